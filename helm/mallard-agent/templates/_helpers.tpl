{{/* Names, labels and the ports the agent's addresses imply. */}}

{{- define "mallard-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mallard-agent.fullname" -}}
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

{{- define "mallard-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mallard-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mallard-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mallard-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: data-plane-agent
{{- end }}

{{- define "mallard-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mallard-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mallard-agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "mallard-agent.claimName" -}}
{{- default (printf "%s-state" (include "mallard-agent.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* The gateway's link port (from controlPlaneAddress) and enrollment port (enrollAddress, or link + 1). */}}
{{- define "mallard-agent.linkPort" -}}
{{- regexFind "[0-9]+$" .Values.controlPlaneAddress }}
{{- end }}

{{- define "mallard-agent.enrollPort" -}}
{{- if .Values.enrollAddress }}
{{- regexFind "[0-9]+$" .Values.enrollAddress }}
{{- else }}
{{- add1 (include "mallard-agent.linkPort" . | int) }}
{{- end }}
{{- end }}

{{- define "mallard-agent.dataPlaneUrl" -}}
{{- default (printf "http://%s.%s.svc:%d" (include "mallard-agent.fullname" .) .Release.Namespace (.Values.dataPlane.port | int)) .Values.dataPlane.url }}
{{- end }}
