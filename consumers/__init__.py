"""guard's Kafka consumer group (`guard consume`): codec, trace headers, batches, output, runner."""
