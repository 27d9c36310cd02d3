{{/* Chart name, or nameOverride. */}}
{{- define "voice-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name prefix: fullnameOverride, else "<release>-<chart>" (just the
release name when it already contains the chart name). 63 characters at most:
some Kubernetes name fields are DNS labels.
*/}}
{{- define "voice-agent.fullname" -}}
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

{{/* "name-version" for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "voice-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that never change for a release: safe in selectors. */}}
{{- define "voice-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voice-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels for every resource. */}}
{{- define "voice-agent.labels" -}}
helm.sh/chart: {{ include "voice-agent.chart" . }}
{{ include "voice-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: voice-agent
{{- end }}

{{/* Labels of one component's resources. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "voice-agent.componentLabels" -}}
{{ include "voice-agent.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component's pods. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "voice-agent.componentSelectorLabels" -}}
{{ include "voice-agent.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* "<fullname>-<component>": the name of a component's Deployment and Service. */}}
{{- define "voice-agent.componentName" -}}
{{- printf "%s-%s" (include "voice-agent.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
One of the project's images: [<registry>/]<repository>:<tag>. The tag is the
component's own, else image.tag, else the chart's appVersion.
Call with (dict "ctx" $ "image" .Values.gateway.image).
*/}}
{{- define "voice-agent.image" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- with .ctx.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .) $.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{- define "voice-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voice-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Pod-level settings every Deployment and Job shares: identity, non-root user,
pull secrets. Call with (dict "ctx" $ "root" <bool>); root is llm.runAsRoot.
*/}}
{{- define "voice-agent.podIdentity" -}}
serviceAccountName: {{ include "voice-agent.serviceAccountName" .ctx }}
# No pod talks to the Kubernetes API.
automountServiceAccountToken: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- if .root }}
  # llm.runAsRoot: the documented exception for vLLM images that need root.
  runAsNonRoot: false
  runAsUser: 0
  runAsGroup: 0
  {{- else }}
  runAsNonRoot: true
  runAsUser: {{ .ctx.Values.securityContext.runAsUser }}
  runAsGroup: {{ .ctx.Values.securityContext.runAsGroup }}
  {{- end }}
  fsGroup: {{ .ctx.Values.securityContext.fsGroup }}
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* A container's securityContext. Call with (dict "root" <bool>). */}}
{{- define "voice-agent.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ not .root }}
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Scheduling: the component's nodeSelector, affinity and tolerations; GPU pods
also get a required node affinity for gpu.products (unless the component's
affinity brings its own nodeAffinity) and gpu.tolerations.
Call with (dict "ctx" $ "values" .Values.asr "gpu" <bool>).
*/}}
{{- define "voice-agent.scheduling" -}}
{{- $affinity := deepCopy (.values.affinity | default dict) }}
{{- $tolerations := .values.tolerations | default list }}
{{- if .gpu }}
{{- $tolerations = concat $tolerations .ctx.Values.gpu.tolerations }}
{{- if and .ctx.Values.gpu.products (not (hasKey $affinity "nodeAffinity")) }}
{{- $term := dict "matchExpressions" (list (dict "key" "nvidia.com/gpu.product" "operator" "In" "values" .ctx.Values.gpu.products)) }}
{{- $_ := set $affinity "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" (list $term))) }}
{{- end }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, then the drain after SIGTERM,
plus a margin. Call with (dict "ctx" $ "values" .Values.gateway).
*/}}
{{- define "voice-agent.terminationGrace" -}}
{{- add .values.preStopSleepSeconds .values.drainSeconds .ctx.Values.shutdownMarginSeconds }}
{{- end }}

{{/* A preStop sleep (Kubernetes >= 1.30: no sleep binary needed in the image). Call with the component's values. */}}
{{- define "voice-agent.preStop" -}}
{{- if gt (int .preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .preStopSleepSeconds }}
{{- end }}
{{- end }}

{{/*
gRPC health probes (grpc.health.v1, overall status). The startup probe allows
startupSeconds for model loading; readiness takes a pod out of the Service
while it drains (NOT_SERVING after SIGTERM). Call with the component's values.
*/}}
{{- define "voice-agent.grpcProbes" -}}
startupProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: {{ div (add .startupSeconds 4) 5 }}
readinessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
livenessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end }}

{{/* Environment from a map, sorted by name (stable manifests), values as strings. */}}
{{- define "voice-agent.envFromMap" -}}
{{- range $name := keys . | sortAlpha }}
- name: {{ $name }}
  value: {{ index $ $name | toString | quote }}
{{- end }}
{{- end }}

{{/* The OTLP endpoint every process exports to: the chart's collector, else tracing.endpoint. */}}
{{- define "voice-agent.tracingEndpoint" -}}
{{- if .Values.tracing.collector.enabled }}
{{- printf "http://%s:4317" (include "voice-agent.componentName" (dict "ctx" . "component" "otel-collector")) }}
{{- else }}
{{- required "tracing.enabled needs tracing.endpoint or tracing.collector.enabled" .Values.tracing.endpoint }}
{{- end }}
{{- end }}

{{/* OTEL_* variables (a map) for the project's processes; empty when tracing is off. */}}
{{- define "voice-agent.tracingEnv" -}}
{{- if .Values.tracing.enabled }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ include "voice-agent.tracingEndpoint" . | quote }}
OTEL_EXPORTER_OTLP_INSECURE: {{ .Values.tracing.insecure | toString | quote }}
{{- end }}
{{- end }}

{{/* The model cache's claim name. */}}
{{- define "voice-agent.modelsClaim" -}}
{{- .Values.models.persistence.existingClaim | default (include "voice-agent.componentName" (dict "ctx" . "component" "models")) }}
{{- end }}

{{/*
A short hash of what the download Job fetches: it names the Job (a Job's pod
template is immutable, so a new list needs a new Job) and its completion
marker, which the model pods wait for.
*/}}
{{- define "voice-agent.modelsHash" -}}
{{- toJson .Values.models.download | sha256sum | trunc 8 }}
{{- end }}

{{/* True ("true") when model pods read from the cache and something is downloaded into it. */}}
{{- define "voice-agent.modelsDownloaded" -}}
{{- if and .Values.models.persistence.enabled .Values.models.download }}true{{ end }}
{{- end }}

{{/*
The model cache volume, mounted read-only by model pods, and an init container
that waits (no network) for the download Job's completion marker, so a pod
never starts on a half-downloaded model. Call with (dict "ctx" $ "image" <image>).
*/}}
{{- define "voice-agent.modelsVolume" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "voice-agent.modelsClaim" .ctx }}
    readOnly: true
{{- end }}

{{- define "voice-agent.modelsMount" -}}
- name: models
  mountPath: {{ .Values.models.mountPath }}
  readOnly: true
{{- end }}

{{- define "voice-agent.waitForModels" -}}
- name: wait-for-models
  image: {{ .image }}
  imagePullPolicy: {{ .pullPolicy }}
  command:
    - sh
    - -c
    - |
      marker={{ .ctx.Values.models.mountPath }}/.voice-agent-{{ include "voice-agent.modelsHash" .ctx }}.done
      until [ -f "$marker" ]; do echo "waiting for the model download Job ($marker)"; sleep 10; done
  securityContext:
    {{- include "voice-agent.containerSecurityContext" (dict "root" false) | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    {{- include "voice-agent.modelsMount" .ctx | nindent 4 }}
{{- end }}

{{/*
Transport security. mtls: one Secret (ca.crt, tls.crt, tls.key) in the gateway, asr and tts pods;
asr and tts serve mTLS with it, the gateway presents it to them. gateway.tls: a kubernetes.io/tls
Secret the gateway serves TLS with, for deployments without Envoy. A TLS port cannot answer the
kubelet's gRPC probes (plaintext only), so such a pod also serves health checks, and nothing else,
in plaintext on its healthPort, and its probes go there.
*/}}
{{- define "voice-agent.mtlsSecret" -}}
{{- .Values.mtls.secretName | default (printf "%s-mtls" (include "voice-agent.fullname" .)) }}
{{- end }}

{{- define "voice-agent.mtlsDir" -}}/etc/voice-agent/mtls{{- end }}

{{- define "voice-agent.gatewayTlsDir" -}}/etc/voice-agent/tls{{- end }}

{{/* The port a component's probes use: its plaintext healthPort when its gRPC port serves TLS. Call with
     (dict "values" <component values> "tls" <bool>). */}}
{{- define "voice-agent.probedPort" -}}
{{- ternary .values.healthPort .values.port .tls }}
{{- end }}

{{/*
A gRPC model service (asr or tts): Deployment and Service. The two differ only
in their env prefix and defaults. Call with (dict "ctx" $ "component" "asr" "prefix" "VOICE_ASR").
*/}}
{{- define "voice-agent.grpcBackend" -}}
{{- $ctx := .ctx }}
{{- $c := index $ctx.Values .component }}
{{- $name := include "voice-agent.componentName" . }}
{{- $image := include "voice-agent.image" (dict "ctx" $ctx "image" $c.image) }}
{{- $models := and $c.gpu.enabled (include "voice-agent.modelsDownloaded" $ctx) }}
{{- $mtls := $ctx.Values.mtls.enabled }}
{{- $env := dict }}
{{- $_ := set $env (printf "%s_PORT" .prefix) $c.port }}
{{- $_ := set $env (printf "%s_METRICS_PORT" .prefix) $c.metricsPort }}
{{- $_ := set $env (printf "%s_SHUTDOWN_GRACE_S" .prefix) $c.drainSeconds }}
{{- $_ := set $env (printf "%s_LOG_FORMAT" .prefix) "json" }}
{{- /* Clients reconnect (and re-resolve DNS, finding new pods) this often; open streams run on. */}}
{{- $_ := set $env (printf "%s_MAX_CONNECTION_AGE_S" .prefix) 300 }}
{{- if $c.gpu.enabled }}
{{- $_ := set $env (printf "%s_DEVICE" .prefix) "cuda" }}
{{- end }}
{{- if $mtls }}
{{- /* Only a client with a certificate of the mTLS CA (the gateway) gets a stream. */}}
{{- $dir := include "voice-agent.mtlsDir" $ctx }}
{{- $_ := set $env (printf "%s_TLS_CERT_FILE" .prefix) (printf "%s/tls.crt" $dir) }}
{{- $_ := set $env (printf "%s_TLS_KEY_FILE" .prefix) (printf "%s/tls.key" $dir) }}
{{- $_ := set $env (printf "%s_TLS_CLIENT_CA_FILE" .prefix) (printf "%s/ca.crt" $dir) }}
{{- $_ := set $env (printf "%s_HEALTH_PORT" .prefix) $c.healthPort }}
{{- end }}
{{- /* Model hubs are never contacted at run time. (The images set HOME=/tmp, an emptyDir here.) */}}
{{- $_ := set $env "HF_HUB_OFFLINE" "1" }}
{{- $env = merge (include "voice-agent.tracingEnv" $ctx | fromYaml) $env }}
{{- $env = merge (deepCopy $c.env) $env }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "voice-agent.componentLabels" . | nindent 4 }}
spec:
  replicas: {{ $c.replicas }}
  {{- if $c.gpu.enabled }}
  # A second copy during a rolling update would not fit in the shared GPU's memory.
  strategy:
    type: Recreate
  {{- end }}
  selector:
    matchLabels:
      {{- include "voice-agent.componentSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "voice-agent.componentSelectorLabels" . | nindent 8 }}
      {{- with $c.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "voice-agent.podIdentity" (dict "ctx" $ctx "root" false) | nindent 6 }}
      {{- with include "voice-agent.scheduling" (dict "ctx" $ctx "values" $c "gpu" $c.gpu.enabled) | trim }}{{ . | nindent 6 }}{{ end }}
      terminationGracePeriodSeconds: {{ include "voice-agent.terminationGrace" (dict "ctx" $ctx "values" $c) }}
      {{- if $models }}
      initContainers:
        {{- include "voice-agent.waitForModels" (dict "ctx" $ctx "image" $image "pullPolicy" $ctx.Values.image.pullPolicy) | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ $image }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          command: ["python", "-m", "services.{{ .component }}"]
          ports:
            - name: grpc
              containerPort: {{ $c.port }}
            - name: metrics
              containerPort: {{ $c.metricsPort }}
            {{- if $mtls }}
            - name: health
              containerPort: {{ $c.healthPort }}
            {{- end }}
          env:
            {{- include "voice-agent.envFromMap" $env | trim | nindent 12 }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- $probed := include "voice-agent.probedPort" (dict "values" $c "tls" $mtls) }}
          {{- include "voice-agent.grpcProbes" (dict "port" $probed "startupSeconds" $c.startupSeconds) | nindent 10 }}
          {{- with include "voice-agent.preStop" $c | trim }}{{ . | nindent 10 }}{{ end }}
          resources:
            {{- $resources := deepCopy $c.resources }}
            {{- if $c.gpu.enabled }}
            {{- /* Exactly one time-sliced GPU; the plugin refuses more (failRequestsGreaterThanOne). */}}
            {{- $_ := set $resources "requests" (merge (dict "nvidia.com/gpu" 1) ($resources.requests | default dict)) }}
            {{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" 1) ($resources.limits | default dict)) }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- include "voice-agent.containerSecurityContext" (dict "root" false) | nindent 12 }}
          volumeMounts:
            # HOME too (the images set HOME=/tmp): the only writable path.
            - name: tmp
              mountPath: /tmp
            {{- if $models }}
            {{- include "voice-agent.modelsMount" $ctx | nindent 12 }}
            {{- end }}
            {{- if $mtls }}
            - name: mtls
              mountPath: {{ include "voice-agent.mtlsDir" $ctx }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 1Gi
        {{- if $models }}
        {{- include "voice-agent.modelsVolume" (dict "ctx" $ctx) | nindent 8 }}
        {{- end }}
        {{- if $mtls }}
        - name: mtls
          secret:
            secretName: {{ include "voice-agent.mtlsSecret" $ctx }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "voice-agent.componentLabels" . | nindent 4 }}
    # The scrape job name (ServiceMonitor jobLabel): dashboards and alerts select on it.
    voice-agent/job: voice-{{ .component }}
spec:
  # Headless: the gateway resolves every ready pod and balances its streams over
  # them round-robin (a ClusterIP would pin all of one gateway's streams to the
  # pod its one HTTP/2 connection reached).
  clusterIP: None
  selector:
    {{- include "voice-agent.componentSelectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $c.port }}
      targetPort: grpc
      {{- if not $mtls }}
      appProtocol: kubernetes.io/h2c
      {{- end }}
    - name: metrics
      port: {{ $c.metricsPort }}
      targetPort: metrics
{{- end }}

{{/* The conversation records' database: the Secret (and its key) holding its URL; "" without one. */}}
{{- define "voice-agent.recordsUrlSecret" -}}
{{- $r := .Values.records }}
{{- if and $r.postgresql.enabled $r.database.urlSecret.name }}
{{- fail "records: use either database.urlSecret (a managed PostgreSQL) or postgresql.enabled (the development StatefulSet), not both" }}
{{- end }}
{{- if $r.postgresql.enabled }}{{ include "voice-agent.componentName" (dict "ctx" . "component" "postgresql") }}{{ else }}{{ $r.database.urlSecret.name }}{{ end }}
{{- end }}

{{- define "voice-agent.recordsUrlKey" -}}
{{- if .Values.records.postgresql.enabled }}url{{ else }}{{ .Values.records.database.urlSecret.key }}{{ end }}
{{- end }}

{{/* The database URL from its Secret (the gateway and the migration Job). */}}
{{- define "voice-agent.recordsDatabaseEnv" -}}
{{- with include "voice-agent.recordsUrlSecret" . }}
- name: VOICE_GATEWAY_RECORDS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "voice-agent.recordsUrlKey" $ }}
{{- end }}
{{- end }}

{{/* Environment from Secrets for the gateway's records: the database URL and the S3 credentials. */}}
{{- define "voice-agent.recordsSecretEnv" -}}
{{- include "voice-agent.recordsDatabaseEnv" . }}
{{- $secret := .Values.records.recordings.s3.credentialsSecret }}
{{- if $secret }}
{{- range $key := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}

{{/* The records' plain settings for the gateway (recordings, retention), as a map. */}}
{{- define "voice-agent.recordsEnv" -}}
{{- $r := .Values.records }}
{{- $env := dict "VOICE_GATEWAY_RECORD" $r.recordings.record "VOICE_GATEWAY_RETENTION_DAYS" $r.retentionDays }}
{{- with $r.recordings.s3 }}
{{- if .bucket }}
{{- $_ := set $env "VOICE_GATEWAY_RECORDINGS_URL" (printf "s3://%s/%s" .bucket (trimAll "/" .prefix) | trimSuffix "/") }}
{{- with .endpoint }}{{ $_ := set $env "AWS_ENDPOINT_URL_S3" . }}{{ end }}
{{- with .region }}{{ $_ := set $env "AWS_REGION" . }}{{ end }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}
