{{/* Names and labels. */}}
{{- define "situate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "situate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "situate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "situate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "situate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "situate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "situate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "situate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "situate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "situate.configMapName" -}}
{{- default (printf "%s-config" (include "situate.fullname" .)) .Values.existingConfigMap -}}
{{- end -}}

{{- define "situate.policiesConfigMapName" -}}
{{- default (printf "%s-policies" (include "situate.fullname" .)) .Values.policies.existingConfigMap -}}
{{- end -}}

{{- define "situate.hasPolicies" -}}
{{- if or .Values.policies.existingConfigMap .Values.policies.files -}}true{{- end -}}
{{- end -}}

{{/* The pod's grace: pre-stop sleep + shutdown_grace + 5 + statement_timeout + 5 (docs/reliability.md). */}}
{{- define "situate.terminationGrace" -}}
{{- $grace := dig "server" "shutdown_grace" 30 .Values.config | float64 | ceil | int -}}
{{- $statement := dig "database" "statement_timeout" 5 .Values.config | float64 | ceil | int -}}
{{- $needed := add .Values.preStopSleepSeconds $grace 5 $statement 5 -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add .Values.preStopSleepSeconds $grace) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + config.server.shutdown_grace (%d): streams are cut by SIGKILL otherwise" .Values.terminationGracePeriodSeconds (add .Values.preStopSleepSeconds $grace)) -}}
{{- end -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- $needed -}}
{{- end -}}
{{- end -}}

{{/* The environment the gateway reads (gateway/config.py); secrets only through secretKeyRef. */}}
{{- define "situate.env" -}}
{{- if not .Values.database.existingSecret -}}
{{- fail "database.existingSecret is required: a Secret holding the PostgreSQL URL (postgresql+asyncpg://…)" -}}
{{- end -}}
- name: GATEWAY_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.database.existingSecret | quote }}, key: {{ .Values.database.key | quote }}}
{{- if .Values.redis.existingSecret }}
- name: GATEWAY_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.redis.existingSecret | quote }}, key: {{ .Values.redis.key | quote }}}
{{- end }}
{{- end -}}

{{- define "situate.gatewayEnv" -}}
{{- include "situate.env" . }}
- name: GATEWAY_CONFIG
  value: /etc/situate/config.yaml
# Each replica keeps its own audit chain, named after its pod (docs/audit.md)
- name: GATEWAY_AUDIT_CHAIN_ID
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- if .Values.audit.existingSecret }}
- name: GATEWAY_AUDIT_KEYS_DIR
  value: /etc/situate/audit
{{- end }}
{{- if .Values.adminToken.existingSecret }}
- name: {{ default "GATEWAY_ADMIN_TOKEN" .Values.config.admin_token_env }}
  valueFrom:
    secretKeyRef: {name: {{ .Values.adminToken.existingSecret | quote }}, key: {{ .Values.adminToken.key | quote }}}
{{- end }}
{{- $mapped := dict -}}
{{- range .Values.upstreamKeys }}
{{- $_ := set $mapped .env true }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef: {name: {{ .existingSecret | quote }}, key: {{ .key | quote }}}
{{- end }}
{{- if not .Values.existingConfigMap }}
{{- range $name, $backend := .Values.config.backends }}
{{- if and $backend.api_key_env (not (hasKey $mapped $backend.api_key_env)) }}
{{- fail (printf "backend %q reads its API key from %s: add {env: %s, existingSecret: …, key: …} to upstreamKeys" $name $backend.api_key_env $backend.api_key_env) }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "situate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "situate.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* A config path as the gateway resolves it: relative to its working directory, /app. */}}
{{- define "situate.absolute" -}}
{{- if hasPrefix "/" . -}}{{ clean . }}{{- else -}}{{ clean (printf "/app/%s" .) }}{{- end -}}
{{- end -}}

{{/* The root filesystem is read-only: what the gateway writes must be on /app/data or /tmp;
the policies it reads must be where the policies ConfigMap is mounted. */}}
{{- define "situate.checkPaths" -}}
{{- $config := .Values.config -}}
{{- $writes := dict "recording.spill_dir" (dig "recording" "spill_dir" "data/spill" $config) "exports_dir" (dig "exports_dir" "data/exports" $config) -}}
{{- range $key, $path := $writes }}
{{- $abs := include "situate.absolute" $path }}
{{- if not (or (eq $abs "/app/data") (hasPrefix "/app/data/" $abs) (hasPrefix "/tmp/" $abs)) }}
{{- fail (printf "config.%s (%s) is on the read-only root filesystem: keep it under /app/data (the data volume) or /tmp" $key $abs) }}
{{- end }}
{{- end }}
{{- if include "situate.hasPolicies" . }}
{{- $policies := include "situate.absolute" (dig "policies_dir" "policies" $config) }}
{{- if ne $policies "/app/policies" }}
{{- fail (printf "config.policies_dir (%s) is not /app/policies, where the policies ConfigMap is mounted" $policies) }}
{{- end }}
{{- end }}
{{- end -}}
