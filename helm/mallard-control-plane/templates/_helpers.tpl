{{/* Names, labels, and the pieces every control-plane Deployment shares. */}}

{{- define "mallard-control-plane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mallard-control-plane.fullname" -}}
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

{{/* Selector labels of one component: pass (dict "root" $ "component" "api"). */}}
{{- define "mallard-control-plane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mallard-control-plane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mallard-control-plane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mallard-control-plane.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: mallard
{{- end }}

{{- define "mallard-control-plane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mallard-control-plane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mallard-control-plane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "mallard-control-plane.claimName" -}}
{{- default (printf "%s-state" (include "mallard-control-plane.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{- define "mallard-control-plane.gatewayService" -}}
{{- printf "%s-gateway" (include "mallard-control-plane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mallard-control-plane.apiService" -}}
{{- printf "%s-api" (include "mallard-control-plane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mallard-control-plane.databaseSecret" -}}
{{- default (printf "%s-database" (include "mallard-control-plane.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "mallard-control-plane.brokerSecret" -}}
{{- default (printf "%s-broker" (include "mallard-control-plane.fullname" .)) .Values.broker.existingSecret }}
{{- end }}

{{- define "mallard-control-plane.bootstrapSecret" -}}
{{- default (printf "%s-bootstrap" (include "mallard-control-plane.fullname" .)) .Values.bootstrapToken.existingSecret }}
{{- end }}

{{- define "mallard-control-plane.hasDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{- define "mallard-control-plane.hasBroker" -}}
{{- if or .Values.broker.url .Values.broker.existingSecret }}true{{ end }}
{{- end }}

{{/* Refuse combinations that would start but not work, with a sentence saying what to set. */}}
{{- define "mallard-control-plane.check" -}}
{{- if not (include "mallard-control-plane.hasDatabase" .) }}
{{- if not .Values.persistence.enabled }}
{{- fail "database.url or database.existingSecret is required when persistence.enabled is false: the SQLite trial database lives on the state volume" }}
{{- end }}
{{- if .Values.scheduler.enabled }}
{{- fail "scheduler.enabled needs PostgreSQL: set database.url or database.existingSecret (SQLite on the state volume is not shared with the worker and beat)" }}
{{- end }}
{{- if or (gt (int .Values.api.replicas) 1) (gt (int .Values.gateway.replicas) 1) }}
{{- fail "more than one API or gateway replica needs PostgreSQL: set database.url or database.existingSecret" }}
{{- end }}
{{- end }}
{{- if and .Values.scheduler.enabled (not (include "mallard-control-plane.hasBroker" .)) }}
{{- fail "scheduler.enabled needs Redis: set broker.url or broker.existingSecret (e.g. redis://redis:6379/0)" }}
{{- end }}
{{- if and (not .Values.persistence.enabled) (not .Values.pki.existingSecret) }}
{{- fail "pki.existingSecret is required when persistence.enabled is false: every API and gateway pod must load the same CA and token-signing keys" }}
{{- end }}
{{- end }}

{{/* Environment every control-plane container gets. */}}
{{- define "mallard-control-plane.env" -}}
- name: MALLARD_CP_HOME
  value: /var/lib/mallard/control-plane
- name: MALLARD_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- if include "mallard-control-plane.hasDatabase" . }}
- name: MALLARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "mallard-control-plane.databaseSecret" . | quote }}
      key: {{ .Values.database.existingSecretKey | quote }}
{{- end }}
{{- if include "mallard-control-plane.hasBroker" . }}
- name: MALLARD_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "mallard-control-plane.brokerSecret" . | quote }}
      key: {{ .Values.broker.existingSecretKey | quote }}
{{- end }}
- name: MALLARD_API_PORT
  value: {{ .Values.api.port | quote }}
- name: MALLARD_GATEWAY_PORT
  value: {{ .Values.gateway.linkPort | quote }}
- name: MALLARD_GATEWAY_ENROLL_PORT
  value: {{ .Values.gateway.enrollPort | quote }}
{{- $svc := include "mallard-control-plane.gatewayService" . }}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
- name: MALLARD_GATEWAY_TLS_NAMES
  value: {{ concat .Values.gateway.tlsNames $names | uniq | toJson | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level fields shared by the Deployments. */}}
{{- define "mallard-control-plane.podSpec" -}}
serviceAccountName: {{ include "mallard-control-plane.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Init containers of the API and gateway: the PKI from its Secret (if any), then `prepare`,
which migrates under a PostgreSQL advisory lock and creates any missing PKI material under a
file lock, so pods starting together neither race on the schema nor mint two CAs. */}}
{{- define "mallard-control-plane.initContainers" -}}
initContainers:
  {{- if .Values.pki.existingSecret }}
  - name: pki
    image: {{ include "mallard-control-plane.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["sh", "-c", "install -d -m 700 \"$MALLARD_CP_HOME/pki\" && for f in ca.key ca.crt jwt.key jwt.pub; do install -m 600 \"/etc/mallard/pki/$f\" \"$MALLARD_CP_HOME/pki/$f\"; done"]
    env:
      - name: MALLARD_CP_HOME
        value: /var/lib/mallard/control-plane
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.api.resources | nindent 6 }}
    volumeMounts:
      - name: state
        mountPath: /var/lib/mallard/control-plane
      - name: pki
        mountPath: /etc/mallard/pki
        readOnly: true
  {{- end }}
  - name: prepare
    image: {{ include "mallard-control-plane.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args: ["prepare"]
    env:
      {{- include "mallard-control-plane.env" . | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.api.resources | nindent 6 }}
    volumeMounts:
      - name: state
        mountPath: /var/lib/mallard/control-plane
      - name: tmp
        mountPath: /tmp
{{- end }}

{{/* Volumes of the API and gateway pods. */}}
{{- define "mallard-control-plane.stateVolumes" -}}
- name: state
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "mallard-control-plane.claimName" . }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: tmp
  emptyDir: {}
{{- with .Values.pki.existingSecret }}
- name: pki
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}
