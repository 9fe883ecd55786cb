{{- define "medserve.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "medserve.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "medserve.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "medserve.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "medserve.fullname" . }}-redis:6379/0
{{- else -}}
{{- required "redis.url is required when redis.enabled is false" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{- define "medserve.workerUrls" -}}
{{- $root := . -}}
{{- $urls := list -}}
{{- range .Values.workerGroups -}}
{{- $urls = append $urls (printf "http://%s-worker-%s:%d" (include "medserve.fullname" $root) .name (int .port)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{- define "medserve.apiKeySecret" -}}
{{- default (printf "%s-api-keys" (include "medserve.fullname" .)) .Values.existingApiKeySecret -}}
{{- end -}}
