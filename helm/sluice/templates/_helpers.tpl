{{/*
The chart name, or nameOverride.
*/}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (DNS label limit). A release name that
already contains the chart name is used as is.
*/}}
{{- define "sluice.fullname" -}}
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

{{/*
The admin Service's name: the full name with "-admin", within 63 characters.
*/}}
{{- define "sluice.adminServiceName" -}}
{{- printf "%s-admin" (include "sluice.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ include "sluice.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: never change them in an upgrade (a Deployment's selector is immutable).
*/}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag | toString }}
{{- end }}

{{- define "sluice.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "sluice.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The sluice config file, as written into the ConfigMap (and hashed for checksum/config):
values.config, with admin.token_file pointing at the mounted admin.tokenSecret when there is
one (allow_unauthenticated is then moot and dropped).
*/}}
{{- define "sluice.configYaml" -}}
{{- if .Values.admin.tokenSecret.name }}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $admin := get $cfg "admin" | default dict }}
{{- $_ := set $admin "token_file" (include "sluice.adminTokenFile" .) }}
{{- $_ = unset $admin "allow_unauthenticated" }}
{{- $_ = set $cfg "admin" $admin }}
{{- toYaml $cfg }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/*
Where the admin token from admin.tokenSecret is mounted (the directory is the Secret volume).
*/}}
{{- define "sluice.adminTokenDir" -}}
/etc/sluice/admin-token
{{- end }}
{{- define "sluice.adminTokenFile" -}}
{{ include "sluice.adminTokenDir" . }}/token
{{- end }}

{{/*
The ports sluice listens on, read from config, as YAML for fromYaml:
  listeners: [{name, port, listener}]   one per listener reachable from outside the pod
  admin: PORT
A listener on a loopback address (127.x, ::1, localhost) gets no port: nothing outside the
pod can reach it. Two listeners on the same port (0.0.0.0:8080 and [::]:8080) share one.
Port names follow Kubernetes' IANA_SVC_NAME rules (at most 15 characters, lowercase letters,
digits and '-', a letter among them, no '-' at either end or twice in a row); a name that
sanitizes to one already taken, or to "admin", gets the port number appended.
*/}}
{{- define "sluice.ports" -}}
{{- $cfg := .Values.config | default dict }}
{{- $ports := list }}
{{- $names := dict "admin" true }}
{{- $numbers := dict }}
{{- $adminAddress := dig "admin" "address" "" $cfg }}
{{- if not $adminAddress }}
{{- fail "config.admin.address is required: sluice's default (127.0.0.1:9901) cannot be probed by the kubelet; use 0.0.0.0:9901" }}
{{- end }}
{{- $admin := include "sluice.parseAddress" (dict "address" $adminAddress "what" "config.admin.address") | fromYaml }}
{{- if $admin.loopback }}
{{- fail (printf "config.admin.address %s is a loopback address: the kubelet's probes and Prometheus reach the pod IP; use 0.0.0.0:%v or [::]:%v" $admin.address $admin.port $admin.port) }}
{{- end }}
{{- $_ := set $numbers (toString $admin.port) "admin" }}
{{- range $i, $l := get $cfg "listeners" | default list }}
{{- $what := printf "config.listeners[%d]" $i }}
{{- $lname := required (printf "%s.name is required" $what) (get $l "name") | toString }}
{{- $a := include "sluice.parseAddress" (dict "address" (required (printf "%s.address is required" $what) (get $l "address")) "what" (printf "%s.address" $what)) | fromYaml }}
{{- $key := toString $a.port }}
{{- if eq (get $numbers $key) "admin" }}
{{- fail (printf "%s.address uses port %s, the port of config.admin.address" $what $key) }}
{{- end }}
{{- if and (not $a.loopback) (not (hasKey $numbers $key)) }}
{{- $n := regexReplaceAll "[^a-z0-9]+" (lower $lname) "-" | trunc 15 | trimAll "-" }}
{{- if or (not (regexMatch "[a-z]" $n)) (hasKey $names $n) }}
{{- $n = printf "%s-%s" (regexReplaceAll "[^a-z0-9]+" (lower $lname) "-" | trunc (int (sub 14 (len $key))) | trimAll "-") $key | trimPrefix "-" }}
{{- if not (regexMatch "[a-z]" $n) }}
{{- $n = printf "p-%s" $key }}
{{- end }}
{{- end }}
{{- $_ := set $names $n true }}
{{- $_ := set $numbers $key $lname }}
{{- $ports = append $ports (dict "name" $n "port" $a.port "listener" $lname) }}
{{- end }}
{{- end }}
{{- toYaml (dict "listeners" $ports "admin" $admin.port) }}
{{- end }}

{{/*
Parses a listen address "host:port" or "[v6]:port" given as (dict "address" A "what" KEY);
returns YAML {address, port, loopback}.
*/}}
{{- define "sluice.parseAddress" -}}
{{- $addr := toString .address }}
{{- if not (regexMatch "^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]]+):[0-9]{1,5}$" $addr) }}
{{- fail (printf "%s: '%s' is not an address of the form host:port or [ipv6]:port" .what $addr) }}
{{- end }}
{{- $port := regexFind "[0-9]+$" $addr | atoi }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "%s: port %d is out of range (1-65535)" .what $port) }}
{{- end }}
{{- $host := regexReplaceAll ":[0-9]+$" $addr "" | trimPrefix "[" | trimSuffix "]" | lower }}
{{- $loopback := or (hasPrefix "127." $host) (eq $host "::1" "localhost" "0:0:0:0:0:0:0:1") }}
{{- toYaml (dict "address" $addr "port" $port "loopback" $loopback) }}
{{- end }}

{{/*
Milliseconds of a sluice duration ("250ms", "15s", "1m", "1h"), given as (dict "value" V "what" KEY).
*/}}
{{- define "sluice.durationMs" -}}
{{- $v := toString .value }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)$" $v) }}
{{- fail (printf "%s: invalid duration '%s' (expected an integer and a unit: 250ms, 5s, 1m, 1h)" .what $v) }}
{{- end }}
{{- $digits := regexFind "^[0-9]+" $v }}
{{- if gt (len $digits) 12 }}
{{- fail (printf "%s: duration '%s' is too long" .what $v) }}
{{- end }}
{{- $unit := trimPrefix $digits $v }}
{{- $factor := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit }}
{{- mul (atoi $digits) $factor }}
{{- end }}

{{/*
Fails rendering when terminationGracePeriodSeconds leaves no time for the drain: Kubernetes
sends SIGKILL terminationGracePeriodSeconds after the start of preStop, so preStop's sleep plus
sluice's drain_timeout must end before that.
*/}}
{{- define "sluice.checkGracePeriod" -}}
{{- $cfg := .Values.config | default dict }}
{{- $drain := "15s" }}
{{- if hasKey $cfg "drain_timeout" }}
{{- $drain = toString $cfg.drain_timeout }}
{{- end }}
{{- $drainMs := include "sluice.durationMs" (dict "value" $drain "what" "config.drain_timeout") | atoi }}
{{- $graceMs := mul (int64 .Values.terminationGracePeriodSeconds) 1000 }}
{{- $sleepMs := mul (int64 .Values.preStopSleepSeconds) 1000 }}
{{- if ge (add $drainMs $sleepMs) $graceMs }}
{{- if gt $sleepMs 0 }}
{{- fail (printf "config.drain_timeout (%s) plus preStopSleepSeconds (%d) must be less than terminationGracePeriodSeconds (%d): Kubernetes kills the pod at the end of the grace period, cutting off requests still draining. Raise terminationGracePeriodSeconds or lower drain_timeout." $drain (int64 .Values.preStopSleepSeconds) (int64 .Values.terminationGracePeriodSeconds)) }}
{{- else }}
{{- fail (printf "config.drain_timeout (%s) must be less than terminationGracePeriodSeconds (%d): Kubernetes kills the pod at the end of the grace period, cutting off requests still draining. Raise terminationGracePeriodSeconds or lower drain_timeout." $drain (int64 .Values.terminationGracePeriodSeconds)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
PromQL label matchers for this release's series.
*/}}
{{- define "sluice.seriesSelector" -}}
{{- default (printf "namespace=%q,job=%q" .Release.Namespace (include "sluice.adminServiceName" .)) .Values.prometheusRule.seriesSelector }}
{{- end }}
