{{/* Names ----------------------------------------------------------------------------------- */}}
{{- define "guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "guard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "guard.labels" -}}
helm.sh/chart: {{ include "guard.chart" . }}
{{ include "guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "guard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "guard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Settings: the values' `settings` plus what the chart decides (ports, model, TLS, Kafka) --- */}}
{{- define "guard.settings" -}}
{{- $s := deepCopy .Values.settings }}
{{- $_ := set $s "host" (ternary "127.0.0.1" "0.0.0.0" (eq .Values.mode "sidecar")) }}
{{- if eq .Values.mode "sidecar" }}
{{- $w := .Values.sidecar.workload }}
{{- $_ = set $s "proxy_upstream" (printf "http://127.0.0.1:%d%s" (int $w.port) $w.basePath) }}
{{- $_ = set $s "proxy_host" "0.0.0.0" }}
{{- $_ = set $s "proxy_port" (int .Values.ports.http) }}
{{- end }}
{{- $_ = set $s "port" (int .Values.ports.grpc) }}
{{- $_ = set $s "health_port" (int .Values.ports.health) }}
{{- $_ = set $s "health_host" "0.0.0.0" }}
{{- $_ = set $s "grace_period_s" .Values.gracePeriodSeconds }}
{{- if .Values.metrics.enabled }}
{{- $_ = set $s "metrics_port" (int .Values.ports.metrics) }}
{{- $_ = set $s "metrics_host" "0.0.0.0" }}
{{- end }}
{{- if ne .Values.model.source "embedded" }}
{{- $_ = set $s "model" .Values.model.mountPath }}
{{- end }}
{{- if .Values.gpu.enabled }}
{{- $_ = set $s "device" "cuda" }}
{{- end }}
{{- if .Values.policies }}
{{- $_ = set $s "policies" .Values.policies }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $_ = set $s "tls_cert_file" "/etc/guard/tls/tls.crt" }}
{{- $_ = set $s "tls_key_file" "/etc/guard/tls/tls.key" }}
{{- if .Values.tls.mutual }}
{{- $_ = set $s "tls_client_ca_file" "/etc/guard/tls/ca.crt" }}
{{- end }}
{{- end }}
{{- if .Values.auth.existingSecret }}
{{- $_ = set $s "auth_token_file" (printf "/etc/guard/auth/%s" .Values.auth.key) }}
{{- end }}
{{- if eq .Values.mode "consumer" }}
{{- $k := .Values.kafka }}
{{- $_ = set $s "kafka_bootstrap_servers" $k.bootstrapServers }}
{{- $_ = set $s "kafka_topics" $k.topics }}
{{- $_ = set $s "kafka_group_id" $k.groupId }}
{{- $_ = set $s "kafka_decisions_topic" $k.decisionsTopic }}
{{- $_ = set $s "kafka_dead_letter_topic" $k.deadLetterTopic }}
{{- if $k.blockedTopic }}
{{- $_ = set $s "kafka_blocked_topic" $k.blockedTopic }}
{{- end }}
{{- $_ = set $s "kafka_delivery" $k.delivery }}
{{- $_ = set $s "kafka_security_protocol" $k.security.protocol }}
{{- if $k.security.saslMechanism }}
{{- $_ = set $s "kafka_sasl_mechanism" $k.security.saslMechanism }}
{{- end }}
{{- if and (contains "SSL" $k.security.protocol) $k.security.existingSecret }}
{{- $_ = set $s "kafka_ssl_cafile" "/etc/guard/kafka/ca.crt" }}
{{- if $k.security.clientCertificate }}
{{- $_ = set $s "kafka_ssl_certfile" "/etc/guard/kafka/tls.crt" }}
{{- $_ = set $s "kafka_ssl_keyfile" "/etc/guard/kafka/tls.key" }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $s }}
{{- end }}

{{/* The ConfigMap holding guard.yaml; another chart that includes guard.sidecarContainer renders it too */}}
{{- define "guard.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "guard.fullname" . }}
  labels:
    {{- include "guard.labels" . | nindent 4 }}
data:
  guard.yaml: |
    {{- include "guard.settings" . | nindent 4 }}
{{- end }}

{{- define "guard.configChecksum" -}}
{{- $s := include "guard.settings" . | fromYaml }}
{{- if .Values.configReload }}
{{- /* what guard reloads live does not restart the pods */}}
{{- $s = omit $s "policies" "default_policy" "tenant_policies" "routes" "route_threshold" }}
{{- end }}
{{- toYaml $s | sha256sum }}
{{- end }}

{{/* The guard container. Call with (dict "root" $ "command" "serve"|"consume") ----------------- */}}
{{- define "guard.container" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
- name: guard
  image: {{ include "guard.image" $root | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: [{{ .command | quote }}, "--config", "/etc/guard/config/guard.yaml"]
  ports:
    {{- if eq .command "serve" }}
    - name: grpc
      containerPort: {{ $v.ports.grpc }}
      protocol: TCP
    {{- else if eq .command "proxy" }}
    - name: http
      containerPort: {{ $v.ports.http }}
      protocol: TCP
    {{- end }}
    - name: health
      containerPort: {{ $v.ports.health }}
      protocol: TCP
    {{- if $v.metrics.enabled }}
    - name: metrics
      containerPort: {{ $v.ports.metrics }}
      protocol: TCP
    {{- end }}
  {{- $env := list }}
  {{- if and (eq .command "consume") $v.kafka.security.existingSecret (hasPrefix "SASL" $v.kafka.security.protocol) }}
  {{- range $key := list "username" "password" }}
  {{- $ref := dict "name" $v.kafka.security.existingSecret "key" $key }}
  {{- $env = append $env (dict "name" (printf "GUARD_KAFKA_SASL_%s" (upper $key)) "valueFrom" (dict "secretKeyRef" $ref)) }}
  {{- end }}
  {{- end }}
  {{- $otel := dict "OTEL_TRACES_EXPORTER" $v.otel.tracesExporter "OTEL_EXPORTER_OTLP_ENDPOINT" $v.otel.endpoint "OTEL_EXPORTER_OTLP_PROTOCOL" $v.otel.protocol "OTEL_SERVICE_NAME" $v.otel.serviceName "OTEL_RESOURCE_ATTRIBUTES" $v.otel.resourceAttributes "OTEL_TRACES_SAMPLER" $v.otel.sampler "OTEL_TRACES_SAMPLER_ARG" $v.otel.samplerArg }}
  {{- range $name := keys $otel | sortAlpha }}
  {{- with get $otel $name }}
  {{- $env = append $env (dict "name" $name "value" (toString .)) }}
  {{- end }}
  {{- end }}
  {{- $env = concat $env $v.env }}
  {{- with $env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  startupProbe:
    grpc:
      port: {{ $v.ports.health }}
    {{- toYaml $v.probes.startup | nindent 4 }}
  readinessProbe:
    grpc:
      port: {{ $v.ports.health }}
    {{- toYaml $v.probes.readiness | nindent 4 }}
  livenessProbe:
    grpc:
      port: {{ $v.ports.health }}
    {{- toYaml $v.probes.liveness | nindent 4 }}
  resources:
    {{- $resources := deepCopy $v.resources }}
    {{- if $v.gpu.enabled }}
    {{- $limits := default (dict) $resources.limits }}
    {{- $_ := set $limits $v.gpu.resourceName (int $v.gpu.count) }}
    {{- $_ = set $resources "limits" $limits }}
    {{- end }}
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: guard-config
      mountPath: /etc/guard/config  # a directory, not a subPath: kubelet updates it in place
      readOnly: true
    - name: guard-tmp
      mountPath: /tmp
    {{- if $v.tls.enabled }}
    - name: guard-tls
      mountPath: /etc/guard/tls
      readOnly: true
    {{- end }}
    {{- if $v.auth.existingSecret }}
    - name: guard-auth
      mountPath: /etc/guard/auth
      readOnly: true
    {{- end }}
    {{- if and (eq .command "consume") $v.kafka.security.existingSecret (contains "SSL" $v.kafka.security.protocol) }}
    - name: guard-kafka
      mountPath: /etc/guard/kafka
      readOnly: true
    {{- end }}
    {{- if ne $v.model.source "embedded" }}
    - name: guard-model
      mountPath: {{ $v.model.mountPath }}
      readOnly: true
      {{- if and (eq $v.model.source "pvc") $v.model.pvc.subPath }}
      subPath: {{ $v.model.pvc.subPath }}
      {{- end }}
    {{- end }}
{{- end }}

{{/* Volumes the guard container mounts. Call with (dict "root" $ "command" ...) ------------- */}}
{{- define "guard.volumes" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
- name: guard-config
  configMap:
    name: {{ include "guard.fullname" $root }}
- name: guard-tmp
  emptyDir:
    sizeLimit: 1Gi
{{- if $v.tls.enabled }}
- name: guard-tls
  secret:
    secretName: {{ required "tls.secretName is required when tls.enabled" $v.tls.secretName }}
{{- end }}
{{- if $v.auth.existingSecret }}
- name: guard-auth
  secret:
    secretName: {{ $v.auth.existingSecret }}
{{- end }}
{{- if and (eq .command "consume") $v.kafka.security.existingSecret (contains "SSL" $v.kafka.security.protocol) }}
- name: guard-kafka
  secret:
    secretName: {{ $v.kafka.security.existingSecret }}
{{- end }}
{{- if eq $v.model.source "pvc" }}
- name: guard-model
  persistentVolumeClaim:
    claimName: {{ required "model.pvc.claimName is required when model.source is pvc" $v.model.pvc.claimName }}
    readOnly: true
{{- else if eq $v.model.source "initContainer" }}
- name: guard-model
  emptyDir:
    sizeLimit: {{ $v.model.initContainer.sizeLimit }}
{{- end }}
{{- end }}

{{/* The init container that fills the model emptyDir (model.source: initContainer) */}}
{{- define "guard.initContainers" -}}
{{- $v := .Values -}}
{{- if eq $v.model.source "initContainer" }}
- name: guard-model
  image: {{ required "model.initContainer.image is required when model.source is initContainer" $v.model.initContainer.image | quote }}
  command:
    {{- toYaml (required "model.initContainer.command is required" $v.model.initContainer.command) | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: guard-model
      mountPath: {{ $v.model.mountPath }}
{{- end }}
{{- end }}

{{/* Sidecar: `guard proxy` beside an OpenAI-compatible LLM server that listens on
     localhost:sidecar.workload.port, serving OpenAI's API on ports.http. Include it in a pod's
     `containers:` of another chart together with guard.sidecarVolumes (in `volumes:`) and
     guard.configMap (as its own manifest), and point that chart's Service at port `http`. */}}
{{- define "guard.sidecarContainer" -}}
{{- include "guard.container" (dict "root" . "command" "proxy") }}
{{- end }}

{{- define "guard.sidecarVolumes" -}}
{{- include "guard.volumes" (dict "root" . "command" "proxy") }}
{{- end }}

{{/* Pod-level fields shared by every mode */}}
{{- define "guard.podCommon" -}}
{{- $v := .Values -}}
serviceAccountName: {{ include "guard.serviceAccountName" . }}
automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{- define "guard.podAnnotations" -}}
checksum/config: {{ include "guard.configChecksum" . }}
{{- if and .Values.metrics.enabled .Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.ports.metrics | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
