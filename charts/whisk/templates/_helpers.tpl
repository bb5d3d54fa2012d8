{{/* Names, labels and the small bits every template shares. */}}

{{- define "whisk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "whisk.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of one component: only immutable ones. */}}
{{- define "whisk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "whisk.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of one component. */}}
{{- define "whisk.labels" -}}
{{ include "whisk.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: whisk
{{- end -}}

{{/* The namespace of the action pods. */}}
{{- define "whisk.actionsNamespace" -}}
{{- default (printf "%s-actions" .Release.Namespace) .Values.actions.namespace -}}
{{- end -}}

{{/* The control plane's stack label (whisk.apache.org/stack on its action pods). */}}
{{- define "whisk.stack" -}}
{{- default (include "whisk.fullname" .) .Values.actions.stack -}}
{{- end -}}

{{- define "whisk.guestSecretName" -}}
{{- default (printf "%s-guest" (include "whisk.fullname" .)) .Values.guest.existingSecret -}}
{{- end -}}

{{- define "whisk.adminSecretName" -}}
{{- printf "%s-admin-token" (include "whisk.fullname" .) -}}
{{- end -}}

{{- define "whisk.routerSecretName" -}}
{{- printf "%s-router-token" (include "whisk.fullname" .) -}}
{{- end -}}

{{- define "whisk.controlplaneHost" -}}
{{- printf "%s-controlplane.%s.svc.%s" (include "whisk.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "whisk.gatewayUrl" -}}
{{- printf "http://%s-gateway.%s.svc.%s:%v" (include "whisk.fullname" .) .Release.Namespace .Values.clusterDomain .Values.gateway.service.port -}}
{{- end -}}

{{/* __OW_API_HOST of actions and the API host NOTES.txt prints. */}}
{{- define "whisk.apiHost" -}}
{{- default (include "whisk.gatewayUrl" .) .Values.apiHost -}}
{{- end -}}

{{- define "whisk.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The hardened security context of every container (Pod Security "restricted" + read-only root). */}}
{{- define "whisk.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "whisk.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
fsGroup: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Telemetry flags shared by the router and the control plane (passed on to container proxies). */}}
{{- define "whisk.telemetryArgs" -}}
{{- if .Values.telemetry.logJson }}
- --log-json
{{- end }}
{{- if .Values.telemetry.otlpEndpoint }}
- --otlp-endpoint
- {{ .Values.telemetry.otlpEndpoint | quote }}
{{- end }}
- --trace-sample-ratio
- {{ .Values.telemetry.traceSampleRatio | quote }}
{{- end -}}

{{- define "whisk.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
