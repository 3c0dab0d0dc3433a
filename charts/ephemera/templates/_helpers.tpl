{{/* Names and labels shared by every template. */}}

{{- define "ephemera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name (at most 63 - the longest suffix, "-operator-handoff"). */}}
{{- define "ephemera.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ephemera.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/part-of: ephemera
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "ephemera.componentLabels" -}}
{{ include "ephemera.labels" .ctx }}
{{ include "ephemera.selectorLabels" . }}
{{- end }}

{{- define "ephemera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ephemera.name" .ctx }}-{{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference: (dict "ctx" $ "image" .Values.operator.image "default" "ephemera-operator"). */}}
{{- define "ephemera.image" -}}
{{- $repo := .image.repository | default (printf "%s/%s" (.ctx.Values.image.registry | trimSuffix "/") .default) }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "ephemera.operator.fullname" -}}{{ include "ephemera.fullname" . }}-operator{{- end }}
{{- define "ephemera.api.fullname" -}}{{ include "ephemera.fullname" . }}-api{{- end }}
{{- define "ephemera.edge.fullname" -}}{{ include "ephemera.fullname" . }}-edge{{- end }}
{{- define "ephemera.hmacSecretName" -}}
{{- .Values.hmacKey.existingSecret | default (printf "%s-hmac" (include "ephemera.fullname" .)) }}
{{- end }}

{{/* The restricted Pod Security profile, for every Pod of the chart. */}}
{{- define "ephemera.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ephemera.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Preferred spreading across nodes unless the admin gave an affinity: (dict "ctx" $ "component" "api" "affinity" .Values.apiServer.affinity). */}}
{{- define "ephemera.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "ephemera.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end }}

{{/* The scheduling fields of a Pod spec: (dict "ctx" $ "component" "api" "values" .Values.apiServer). */}}
{{- define "ephemera.scheduling" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
affinity:
  {{- include "ephemera.affinity" (dict "ctx" .ctx "component" .component "affinity" .values.affinity) | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* The API Service's in-cluster URL (workers post progress there). */}}
{{- define "ephemera.api.url" -}}
http://{{ include "ephemera.api.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.apiServer.service.port }}
{{- end }}

{{/* Egress of a component that calls the Kubernetes API (and DNS). */}}
{{- define "ephemera.kubeApiEgress" -}}
- to:
    {{- if .Values.networkPolicy.kubeApiCidrs }}
    {{- range .Values.networkPolicy.kubeApiCidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- else }}
    - ipBlock:
        cidr: 0.0.0.0/0
    - ipBlock:
        cidr: ::/0
    {{- end }}
  ports:
    - port: 443
      protocol: TCP
    - port: 6443
      protocol: TCP
# DNS (the Services' names).
- to:
    - namespaceSelector: {}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/* The port of a URL: its explicit one, else the scheme's. */}}
{{- define "ephemera.urlPort" -}}
{{- $u := urlParse . }}
{{- if contains ":" $u.host }}{{ $u.host | splitList ":" | last }}{{ else if eq $u.scheme "https" }}443{{ else }}80{{ end }}
{{- end }}

{{/* The volumes of a daemon that calls the Kubernetes API: its token (as automounting would give
it, but only where mounted) and the shared HMAC key. */}}
{{- define "ephemera.daemonVolumes" -}}
- name: kube-api
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
- name: hmac
  secret:
    secretName: {{ include "ephemera.hmacSecretName" . }}
    defaultMode: 0400
    items:
      - key: key
        path: key
{{- end }}

{{/* A component's PodDisruptionBudget: (dict "name" $name "labels" $labels "pdb" .podDisruptionBudget). */}}
{{- define "ephemera.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .labels.ctx.Release.Namespace }}
  labels:
    {{- include "ephemera.componentLabels" .labels | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "ephemera.selectorLabels" .labels | nindent 6 }}
{{- end }}
{{- end }}

{{/*
A Deployment strategy from values: rollingUpdate only with the RollingUpdate type (Kubernetes
refuses it with Recreate, and values merged from the defaults would still carry it).
*/}}
{{- define "ephemera.strategy" -}}
type: {{ .type }}
{{- if and (eq .type "RollingUpdate") .rollingUpdate }}
rollingUpdate:
  {{- toYaml .rollingUpdate | nindent 2 }}
{{- end }}
{{- end }}
