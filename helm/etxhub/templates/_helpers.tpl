{{/* Chart name. */}}
{{- define "etxhub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects (shared ConfigMap, Secret, Job). */}}
{{- define "etxhub.fullname" -}}
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

{{/* Name of one target's objects. Call with (dict "root" $ "name" <target>). */}}
{{- define "etxhub.targetName" -}}
{{- printf "%s-%s" (include "etxhub.fullname" .root | trunc 50 | trimSuffix "-") .name }}
{{- end }}

{{- define "etxhub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object. Call with the root context. */}}
{{- define "etxhub.commonLabels" -}}
helm.sh/chart: {{ include "etxhub.chart" . }}
app.kubernetes.io/name: {{ include "etxhub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: etxhub
{{- end }}

{{/* Labels of one target's objects. Call with (dict "root" $ "name" <target>). */}}
{{- define "etxhub.labels" -}}
{{ include "etxhub.commonLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Selector labels of one target. Call with (dict "root" $ "name" <target>). */}}
{{- define "etxhub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etxhub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* The image reference. */}}
{{- define "etxhub.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* Targets the binary knows; the chart refuses any other. */}}
{{- define "etxhub.knownTargets" -}}
gateway identity ingestion masking reconciliation
{{- end }}

{{- define "etxhub.validateTarget" -}}
{{- if not (has . (splitList " " (include "etxhub.knownTargets" nil))) }}
{{- fail (printf "targets.%s: unknown target; etxhub knows: %s" . (include "etxhub.knownTargets" nil)) }}
{{- end }}
{{- end }}

{{/* Targets that use the queue (and so need the Redis URL). */}}
{{- define "etxhub.usesQueue" -}}
{{- if has . (list "ingestion" "masking" "reconciliation") }}true{{ end }}
{{- end }}

{{/* Container port name of a target: https for the gateway, http otherwise. */}}
{{- define "etxhub.portName" -}}
{{- if eq . "gateway" }}https{{ else }}http{{ end }}
{{- end }}

{{/* Name of the Secret holding the keys and URLs. */}}
{{- define "etxhub.secretName" -}}
{{- .Values.secrets.name | default (include "etxhub.fullname" .) }}
{{- end }}

{{/* Base URL of a target's Service. Call with (dict "root" $ "name" <target>). */}}
{{- define "etxhub.serviceUrl" -}}
{{- $t := index .root.Values.targets .name | default dict }}
{{- printf "http://%s:%v" (include "etxhub.targetName" .) (dig "service" "port" 8080 $t) }}
{{- end }}

{{/*
Environment from Secrets. Call with (dict "root" $ "name" <target>); name "migrate" gives only
the database URL. Optional entries (master key id, previous master keys) are left unset when the
Secret lacks them, so the binary's defaults apply.
*/}}
{{- define "etxhub.secretEnv" -}}
{{- $root := .root }}
{{- $refs := $root.Values.secrets.refs }}
{{- $default := include "etxhub.secretName" $root }}
{{- $entries := list (list "ETX__DATABASE__URL" "databaseUrl" false) }}
{{- if ne .name "migrate" }}
{{- $entries = append $entries (list "ETX__SECURITY__MASTER_KEY" "masterKey" false) }}
{{- $entries = append $entries (list "ETX__SECURITY__MASTER_KEY_ID" "masterKeyId" true) }}
{{- $entries = append $entries (list "ETX__SECURITY__HMAC_KEY" "hmacKey" false) }}
{{- $entries = append $entries (list "ETX__SECURITY__INTERNAL_SECRET" "internalSecret" false) }}
{{- $entries = append $entries (list "ETX__SECURITY__PREVIOUS_MASTER_KEYS" "previousMasterKeys" true) }}
{{- if and (include "etxhub.usesQueue" .name) (eq $root.Values.config.queueKind "redis") }}
{{- $entries = append $entries (list "ETX__QUEUE__REDIS_URL" "redisUrl" false) }}
{{- end }}
{{- end }}
{{- range $e := $entries }}
{{- $ref := index $refs (index $e 1) }}
- name: {{ index $e 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | default $default }}
      key: {{ $ref.key }}
      {{- if index $e 2 }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: preStop (5 s) + requests + outbox drain + margin. */}}
{{- define "etxhub.gracePeriod" -}}
{{- add 15 (mul 2 (int .Values.config.shutdownTimeoutSecs)) }}
{{- end }}
