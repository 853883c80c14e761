{{/* Names and labels. */}}
{{- define "cert-rotator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cert-rotator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cert-rotator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cert-rotator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cert-rotator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cert-rotator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "cert-rotator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cert-rotator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cert-rotator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
Checks that values fit together; values.schema.json checks each value on its own.
*/}}
{{- define "cert-rotator.validate" -}}
{{- if and (eq .Values.rbac.scope "namespaced") (empty .Values.watchNamespaces) -}}
{{- fail "rbac.scope=namespaced needs watchNamespaces: the namespaces to grant access to and watch" -}}
{{- end -}}
{{- $a := .Values.prometheusRule.alerts -}}
{{- if and $a.expiringSoon.enabled $a.expiringCritical.enabled (le (float64 $a.expiringSoon.days) (float64 $a.expiringCritical.days)) -}}
{{- fail (printf "prometheusRule.alerts.expiringSoon.days (%v) must be greater than prometheusRule.alerts.expiringCritical.days (%v)" $a.expiringSoon.days $a.expiringCritical.days) -}}
{{- end -}}
{{- end -}}

{{/*
The config file: values.config with the parts the chart owns filled in.
*/}}
{{- define "cert-rotator.config" -}}
{{- $config := deepCopy (default (dict) .Values.config) -}}
{{- if .Values.watchNamespaces -}}
{{- $_ := set $config "namespaces" (uniq .Values.watchNamespaces) -}}
{{- end -}}
{{- $_ := set $config "metrics" (dict "address" (printf ":%v" .Values.metrics.port)) -}}
{{- if not (hasKey $config "ui") -}}
{{- $_ := set $config "ui" (dict "enabled" (ne (toString (dig "enabled" true (default (dict) .Values.ui))) "false")) -}}
{{- end -}}
{{- /* Expiry notices (Events) use the alert rules' thresholds: one setting for both. */ -}}
{{- $notices := deepCopy (default (dict) $config.notices) -}}
{{- if not (hasKey $notices "thresholds") -}}
{{- $a := .Values.prometheusRule.alerts -}}
{{- $t := list -}}
{{- if $a.expiringSoon.enabled }}{{ $t = append $t (printf "%vd" $a.expiringSoon.days) }}{{ end -}}
{{- if $a.expiringCritical.enabled }}{{ $t = append $t (printf "%vd" $a.expiringCritical.days) }}{{ end -}}
{{- if $a.expired.enabled }}{{ $t = append $t "0" }}{{ end -}}
{{- if $t }}{{ $_ := set $notices "thresholds" $t }}{{ else }}{{ $_ := set $notices "enabled" false }}{{ end -}}
{{- end -}}
{{- if not (hasKey $notices "grace") -}}
{{- $_ := set $notices "grace" (toString .Values.prometheusRule.alerts.expiringSoon.for) -}}
{{- end -}}
{{- $_ := set $config "notices" $notices -}}
{{- $le := deepCopy (default (dict) $config.leaderElection) -}}
{{- if not (hasKey $le "namespace") -}}
{{- $_ := set $le "namespace" .Release.Namespace -}}
{{- end -}}
{{- $_ := set $config "leaderElection" $le -}}
{{- if not $config.defaults -}}{{- $_ := unset $config "defaults" -}}{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "cert-rotator.leaderElectionEnabled" -}}
{{- $le := default (dict) .Values.config.leaderElection -}}
{{- if or (not (hasKey $le "enabled")) $le.enabled -}}true{{- end -}}
{{- end -}}

{{/*
Rules for the namespaces the controller watches. Each line is a call the code makes:
  secrets get/list/watch/update  read, list+watch (informer), replace (atomic renewal write)
  events create/patch            Renewed, RenewalFailed, ... on the Secret and the workload (patch: a repeat within 10 min counts up on the same Event)
  deployments/statefulsets/daemonsets get/list/watch/patch  find and restart the users of a Secret
*/}}
{{- define "cert-rotator.watchRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, update]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
{{- if (include "cert-rotator.monitoring" . | fromJson).configMaps }}
{{- /* monitoring.configMaps: certificates in ConfigMaps (src/monitor/cluster-monitor.ts). */}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
{{- end }}
{{- if (default (dict) .Values.acme).enabled }}
{{- /* acme issuers: pending-order (and account) Secrets, HTTP-01 routing objects (src/kube/acme-resources.ts).
       get: an object under a computed name is read and checked to be ours before it is deleted. */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, create, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, create, delete]
{{- end }}
{{- if (include "cert-rotator.csr" . | fromJson).requester }}
{{- /* kubernetesCSR issuers: the companion Secret holding a pending CSR's key (src/issuers/kubernetes-csr/pending.ts). */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete]
{{- end }}
{{- with (include "cert-rotator.managedCa" . | fromJson) }}
{{- /* allowCA issuers: a renewed CA Secret that backs a ca issuer is staged as NAME-next (create cannot be
       limited by name), which the CA rollover deletes once the new CA is active (src/controller/stage.ts). */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- with .staged }}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: {{ toJson . }}
  verbs: [delete]
{{- end }}
{{- end }}
{{- end -}}

{{/*
What CAs renewed by cert-rotator need, as JSON: {} when no issuer has allowCA: true, else
{"staged": [NAME-next, ...]} for the CA Secrets of ca issuers in the watched namespaces (all of
them when watchNamespaces is empty): the controller manages only Secrets it watches.
*/}}
{{- define "cert-rotator.managedCa" -}}
{{- $issuers := default (list) .Values.config.issuers -}}
{{- $allow := false -}}
{{- range $issuer := $issuers -}}
{{- if and (kindIs "map" $issuer) $issuer.allowCA -}}{{- $allow = true -}}{{- end -}}
{{- end -}}
{{- if $allow -}}
{{- $watched := .Values.watchNamespaces -}}
{{- $staged := list -}}
{{- range $issuer := $issuers -}}
{{- if and (kindIs "map" $issuer) $issuer.ca -}}
{{- $ref := default (dict) $issuer.ca.secret -}}
{{- if and $ref.namespace $ref.name (or (empty $watched) (has $ref.namespace $watched)) -}}
{{- $staged = append $staged (printf "%s-next" $ref.name) | uniq -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- dict "staged" $staged | toJson -}}
{{- else -}}
{{- dict | toJson -}}
{{- end -}}
{{- end -}}

{{/*
What the CSR pieces of the config need, as JSON:
  requester        a kubernetesCSR issuer exists (create/get/list/watch/delete CSRs)
  selfApprove      signerNames of kubernetesCSR issuers with autoApprove (approval + approve)
  sign             signerNames of ca issuers with `signer` (status + sign, get/list/watch CSRs)
  approve          signerNames of those with `approve` (approval + approve)
  configMaps       caBundleFrom ConfigMaps: namespace -> names (get)
  podSign          podCertificates signerNames of ca issuers (sign, PCRs get/list/watch + status, pods get)
  podSAUid         some podCertificates template names {serviceaccountuid} (serviceaccounts get)
*/}}
{{- define "cert-rotator.csr" -}}
{{- $out := dict "requester" false "selfApprove" (list) "sign" (list) "approve" (list) "configMaps" (dict) "podSign" (list) "podSAUid" false -}}
{{- range $issuer := (default (list) .Values.config.issuers) -}}
{{- if kindIs "map" $issuer -}}
{{- with $issuer.kubernetesCSR -}}
{{- $_ := set $out "requester" true -}}
{{- if .autoApprove -}}{{- $_ := set $out "selfApprove" (append $out.selfApprove .signerName | uniq) -}}{{- end -}}
{{- with .caBundleFrom -}}{{- with .configMap -}}
{{- $names := get $out.configMaps .namespace | default (list) -}}
{{- $_ := set $out.configMaps .namespace (append $names .name | uniq) -}}
{{- end -}}{{- end -}}
{{- end -}}
{{- if and $issuer.ca (hasKey $issuer "signer") -}}
{{- $signerName := (default (dict) $issuer.signer).signerName | default (printf "cert-rotator.io/%s" $issuer.name) -}}
{{- $_ := set $out "sign" (append $out.sign $signerName | uniq) -}}
{{- if $issuer.approve -}}{{- $_ := set $out "approve" (append $out.approve $signerName | uniq) -}}{{- end -}}
{{- end -}}
{{- if and $issuer.ca (hasKey $issuer "podCertificates") -}}
{{- $pc := default (dict) $issuer.podCertificates -}}
{{- $podSigner := $pc.signerName | default (printf "cert-rotator.io/%s-pods" $issuer.name) -}}
{{- $_ := set $out "podSign" (append $out.podSign $podSigner | uniq) -}}
{{- if contains "{serviceaccountuid}" (toJson (concat (default (list) $pc.uris) (default (list) $pc.dnsNames))) -}}
{{- $_ := set $out "podSAUid" true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
Secrets the issuers read outside the watched namespaces (the `ca` issuer's CA Secret), as a
dict namespace -> list of names. Only needed with rbac.scope=namespaced.
*/}}
{{- define "cert-rotator.issuerSecrets" -}}
{{- $watched := .Values.watchNamespaces -}}
{{- $out := dict -}}
{{- $refs := list -}}
{{- range $issuer := (default (list) .Values.config.issuers) -}}
{{- if and (kindIs "map" $issuer) $issuer.ca -}}
{{- $refs = append $refs (default (dict) $issuer.ca.secret) -}}
{{- end -}}
{{- if and (kindIs "map" $issuer) $issuer.acme -}}
{{- $refs = append $refs (default (dict) $issuer.acme.accountKeySecret) -}}
{{- with $issuer.acme.externalAccountBinding -}}
{{- $refs = append $refs (default (dict) .hmacKeySecret) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with (include "cert-rotator.monitoring" $ | fromJson).passwordSecret -}}
{{- $refs = append $refs . -}}
{{- end -}}
{{- range $ref := $refs -}}
{{- if and $ref.namespace $ref.name (not (has $ref.namespace $watched)) -}}
{{- $names := get $out $ref.namespace | default (list) -}}
{{- $_ := set $out $ref.namespace (append $names $ref.name | uniq) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
CA Secrets outside the watched namespaces, as JSON {namespace: [name, ...]}: a CA rollover
updates them (docs/ca-rollover.md), and reads and then deletes the staged next CA, which the
chart can grant only by name: NAME-next.
*/}}
{{- define "cert-rotator.caSecrets" -}}
{{- $watched := .Values.watchNamespaces -}}
{{- $out := dict -}}
{{- range $issuer := (default (list) .Values.config.issuers) -}}
{{- if and (kindIs "map" $issuer) $issuer.ca -}}
{{- $ref := default (dict) $issuer.ca.secret -}}
{{- if and $ref.namespace $ref.name (not (has $ref.namespace $watched)) -}}
{{- $names := get $out $ref.namespace | default (list) -}}
{{- $_ := set $out $ref.namespace (append $names $ref.name | uniq) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Seconds in a Prometheus duration such as 1h30m or 14d. */}}
{{- define "cert-rotator.seconds" -}}
{{- $total := 0 -}}
{{- range $part := regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+" $part | int64 -}}
{{- $unit := regexFind "[a-z]+$" $part -}}
{{- $mult := get (dict "ms" 0 "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800 "y" 31536000) $unit -}}
{{- $total = add $total (mul $n $mult) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
What the monitoring section of the config needs, as JSON:
  configMaps      list/watch ConfigMaps where Secrets are watched
  webhookKinds    the cluster-scoped kinds to list/watch: [{group, resource}]
  passwordSecret  a keystore password Secret {namespace, name}, or absent
*/}}
{{- define "cert-rotator.monitoring" -}}
{{- $m := default (dict) .Values.config.monitoring -}}
{{- $out := dict "configMaps" (default false (default (dict) $m.configMaps).enabled) "webhookKinds" (list) -}}
{{- $wh := default (dict) $m.webhooks -}}
{{- if $wh.enabled -}}
{{- $all := list "ValidatingWebhookConfiguration" "MutatingWebhookConfiguration" "APIService" "CustomResourceDefinition" -}}
{{- $rules := dict
  "ValidatingWebhookConfiguration" (dict "group" "admissionregistration.k8s.io" "resource" "validatingwebhookconfigurations")
  "MutatingWebhookConfiguration" (dict "group" "admissionregistration.k8s.io" "resource" "mutatingwebhookconfigurations")
  "APIService" (dict "group" "apiregistration.k8s.io" "resource" "apiservices")
  "CustomResourceDefinition" (dict "group" "apiextensions.k8s.io" "resource" "customresourcedefinitions") -}}
{{- range $kind := (default $all $wh.kinds) -}}
{{- with get $rules $kind -}}{{- $_ := set $out "webhookKinds" (append $out.webhookKinds .) -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $ks := default (dict) $m.keystores -}}
{{- if and $ks.enabled $ks.password -}}
{{- with $ks.password.secret -}}{{- $_ := set $out "passwordSecret" (dict "namespace" .namespace "name" .name) -}}{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* "true" when a source of the x509 family is on (its alert rules are rendered only then). */}}
{{- define "cert-rotator.x509Enabled" -}}
{{- $m := default (dict) .Values.config.monitoring -}}
{{- $on := .Values.nodeMonitor.enabled -}}
{{- range $k := list "secrets" "configMaps" "keystores" "kubeconfigs" "webhooks" -}}
{{- if (default (dict) (get $m $k)).enabled -}}{{- $on = true -}}{{- end -}}
{{- end -}}
{{- if $on -}}true{{- end -}}
{{- end -}}

{{/*
What the config's trustBundles need (src/rollover/bundles.ts), as JSON:
  configMaps     listed namespaces: namespace -> ConfigMap names (create; get/update by name)
  selectorNames  ConfigMap names written to label-selected namespaces (list namespaces;
                 create anywhere, get/update by name, cluster-wide)
  ctbNames       ClusterTrustBundle names (create; get/update by name), defaults as in
                 src/config/trust-bundles.ts
  attest         signerNames the bundles link to (signers attest, by name)
*/}}
{{- define "cert-rotator.trustBundles" -}}
{{- $out := dict "configMaps" (dict) "selectorNames" (list) "ctbNames" (list) "attest" (list) -}}
{{- range $b := (default (list) .Values.config.trustBundles) -}}
{{- if kindIs "map" $b -}}
{{- with $b.configMap -}}
{{- $cm := . -}}
{{- range $ns := (default (list) $b.namespaces) -}}
{{- $names := get $out.configMaps $ns | default (list) -}}
{{- $_ := set $out.configMaps $ns (append $names $cm.name | uniq) -}}
{{- end -}}
{{- if hasKey $b "namespaceSelector" -}}
{{- $_ := set $out "selectorNames" (append $out.selectorNames $cm.name | uniq) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $b "clusterTrustBundle" -}}
{{- $ctb := default (dict) $b.clusterTrustBundle -}}
{{- $name := $ctb.name -}}
{{- if $ctb.signerName -}}
{{- $_ := set $out "attest" (append $out.attest $ctb.signerName | uniq) -}}
{{- $name = $name | default (printf "%s:%s" (replace "/" ":" $ctb.signerName) $b.issuer) -}}
{{- else -}}
{{- $name = $name | default (printf "cert-rotator.%s" $b.issuer) -}}
{{- end -}}
{{- $_ := set $out "ctbNames" (append $out.ctbNames $name | uniq) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
