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

{{/* Every worker pod, by name: `dns+http://` makes the gateway and the job runners resolve a
group's headless Service to its pod addresses (one replica each, balanced per request). */}}
{{- define "medserve.workerUrls" -}}
{{- $root := . -}}
{{- $urls := list -}}
{{- range .Values.workerGroups -}}
{{- $urls = append $urls (printf "dns+http://%s-worker-%s:%d" (include "medserve.fullname" $root) .name (int .port)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{- define "medserve.vllmUrl" -}}
{{- if .Values.vllm.enabled -}}
http://{{ include "medserve.fullname" . }}-vllm:{{ .Values.vllm.port }}/v1
{{- else -}}
{{- .Values.vllm.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* Environment every medserve container gets: engines, and caches under the writable home
(the root filesystem is read-only). */}}
{{- define "medserve.commonEnv" -}}
- { name: HOME, value: /var/lib/medserve }
- { name: XDG_CACHE_HOME, value: /var/lib/medserve/.cache }
- { name: HF_HOME, value: /var/lib/medserve/.cache/huggingface }
- { name: HF_HUB_OFFLINE, value: "1" }
- { name: TORCH_HOME, value: /var/lib/medserve/.cache/torch }
- { name: TRITON_CACHE_DIR, value: /var/lib/medserve/.cache/triton }
- { name: MPLCONFIGDIR, value: /var/lib/medserve/.cache/matplotlib }
{{- with (include "medserve.vllmUrl" .) }}
- { name: MEDSERVE_VLLM_BASE_URL, value: {{ . | quote }} }
- { name: MEDSERVE_VLLM_MODEL, value: {{ $.Values.vllm.servedModelName | quote }} }
{{- end }}
{{- end -}}

{{/* The writable places of a read-only container: /tmp and the home with its caches. */}}
{{- define "medserve.scratchMounts" -}}
- { name: tmp, mountPath: /tmp }
- { name: home, mountPath: /var/lib/medserve }
{{- end -}}

{{- define "medserve.scratchVolumes" -}}
- name: tmp
  emptyDir: { sizeLimit: {{ .Values.scratch.tmpSize }} }
- name: home
  emptyDir: { sizeLimit: {{ .Values.scratch.homeSize }} }
{{- end -}}

{{- define "medserve.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end -}}

{{- define "medserve.jobsProbe" -}}
# The runner writes a heartbeat key in Redis every lease/2 s (it expires after 3 leases).
livenessProbe:
  exec: { command: ["medserve", "jobs", "check"] }
  initialDelaySeconds: 30
  periodSeconds: 30
  timeoutSeconds: 15
  failureThreshold: 3
{{- end -}}

{{- define "medserve.apiKeySecret" -}}
{{- default (printf "%s-api-keys" (include "medserve.fullname" .)) .Values.existingApiKeySecret -}}
{{- end -}}


{{/* A KEDA ScaledObject on a Celery queue: the Redis list of that name (Celery's Redis
transport keeps a queue's waiting messages in a list named after it). */}}
{{- define "medserve.queueScaler" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "medserve.fullname" $root) .component -}}
{{- $address := .scaling.redisAddress | default $root.Values.jobs.autoscaling.redisAddress -}}
{{- if not $address -}}
{{- if not $root.Values.redis.enabled -}}
{{- fail "jobs.autoscaling.redisAddress (host:port) is required with an external Redis" -}}
{{- end -}}
{{- $address = printf "%s-redis:6379" (include "medserve.fullname" $root) -}}
{{- end }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $name }}
  labels: {{- include "medserve.labels" $root | nindent 4 }}
spec:
  scaleTargetRef: { name: {{ $name }} }
  minReplicaCount: {{ .scaling.minReplicas }}
  maxReplicaCount: {{ .scaling.maxReplicas }}
  pollingInterval: {{ $root.Values.keda.pollingInterval }}
  cooldownPeriod: {{ $root.Values.keda.cooldownPeriod }}
  triggers:
    - type: redis
      metadata:
        address: {{ $address | quote }}
        listName: {{ .queue | quote }}
        listLength: {{ .scaling.queuedJobsPerRunner | quote }}
        databaseIndex: "0"
{{- end -}}

{{/* NetworkPolicy peers: this release's pods of the given components. */}}
{{- define "medserve.peers" -}}
{{- range .components }}
- podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ $.root.Release.Name }}
      app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}
