{{/*
The alert rules, in one place: templates/prometheusrule.yaml wraps them in a PrometheusRule,
and the promtool tests render them as a plain rules file (`groups:`).

Both replicas export every certificate, so each expression first takes one series per
Secret (max by namespace, secret, issuer, managed) and the alert carries those labels only.
*/}}
{{- define "cert-rotator.alertGroups" -}}
{{- $a := .Values.prometheusRule.alerts -}}
{{- $sel := .Values.prometheusRule.certificateSelector -}}
{{- $any := ternary "" (printf "{%s}" $sel) (empty $sel) -}}
{{- $s := ternary "" (printf ",%s" $sel) (empty $sel) -}}
{{- $by := "namespace, secret, issuer, managed" -}}
{{- $notAfter := printf "max by (%s) (cert_rotator_certificate_not_after_timestamp_seconds%s)" $by $any -}}
{{- $renewal := printf "max by (%s) (cert_rotator_certificate_renewal_timestamp_seconds{managed=\"true\"%s})" $by $s -}}
{{- /* A managed Secret whose renewal is planned for later is not a problem yet. */ -}}
{{- $notDueYet := printf "unless on (namespace, secret) (%s > time())" $renewal -}}
{{- $job := default (include "cert-rotator.fullname" .) $a.controllerAbsent.job -}}
groups:
  - name: cert-rotator
    rules:
{{- with $a.renewalOverdue }}{{ if .enabled }}
      - alert: CertRotatorRenewalOverdue
        expr: time() - {{ $renewal }} > {{ include "cert-rotator.seconds" .grace }}
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: Renewal of the certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} is overdue
          description: >-
            cert-rotator planned to renew the certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }}
            (issuer {{ "{{ $labels.issuer }}" }}) {{ "{{ $value | humanizeDuration }}" }} ago and it has not
            been renewed. Look at the Secret's events and its cert-rotator.io/last-error annotation.
{{- end }}{{ end }}
{{- with $a.expiringSoon }}{{ if .enabled }}
      - alert: CertRotatorCertificateExpiringSoon
        expr: ({{ $notAfter }} - time() < {{ .days }} * 86400{{ if $a.expiringCritical.enabled }} >= {{ $a.expiringCritical.days }} * 86400{{ end }}) {{ $notDueYet }}
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: Certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} expires in less than {{ .days }} days
          description: >-
            The certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} (managed {{ "{{ $labels.managed }}" }})
            expires in {{ "{{ $value | humanizeDuration }}" }}.
{{- end }}{{ end }}
{{- with $a.expiringCritical }}{{ if .enabled }}
      - alert: CertRotatorCertificateExpiringCritical
        expr: ({{ $notAfter }} - time() < {{ .days }} * 86400 > 0) {{ $notDueYet }}
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: Certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} expires in less than {{ .days }} days
          description: >-
            The certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} (managed {{ "{{ $labels.managed }}" }})
            expires in {{ "{{ $value | humanizeDuration }}" }}.
{{- end }}{{ end }}
{{- with $a.expired }}{{ if .enabled }}
      - alert: CertRotatorCertificateExpired
        expr: time() - {{ $notAfter }} >= 0
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: Certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} has expired
          description: >-
            The certificate in Secret {{ "{{ $labels.namespace }}/{{ $labels.secret }}" }} (managed {{ "{{ $labels.managed }}" }})
            expired {{ "{{ $value | humanizeDuration }}" }} ago.
{{- end }}{{ end }}
{{- with $a.renewalFailures }}{{ if .enabled }}
      - alert: CertRotatorRenewalFailures
        # The second part counts a failure series that appeared within the window: increase()
        # cannot see the first sample of a new counter, and a counter appears at its first failure.
        expr: >-
          sum by (issuer) (increase(cert_rotator_renewals_total{result="failure"}[{{ .window }}])) > {{ .threshold }}
          or
          sum by (issuer) (cert_rotator_renewals_total{result="failure"} unless cert_rotator_renewals_total{result="failure"} offset {{ .window }}) > {{ .threshold }}
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: Certificate renewals with issuer {{ "{{ $labels.issuer }}" }} are failing
          description: >-
            Renewals with issuer {{ "{{ $labels.issuer }}" }} failed within the last {{ .window }}. The RenewalFailed
            events on the Secrets name the cause.
{{- end }}{{ end }}
{{- with $a.caExpiringSoon }}{{ if .enabled }}
      - alert: CertRotatorCAExpiringSoon
        expr: max by (issuer) (cert_rotator_ca_not_after_timestamp_seconds) - time() < {{ .days }} * 86400
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: The CA of issuer {{ "{{ $labels.issuer }}" }} expires in less than {{ .days }} days
          description: >-
            The signing CA of ca issuer {{ "{{ $labels.issuer }}" }} expires in {{ "{{ $value | humanizeDuration }}" }};
            leaves it signs are cut off at that time. Stage the next CA and let cert-rotator roll it over
            (docs/ca-rollover.md) well before then.
{{- end }}{{ end }}
{{- with $a.controllerAbsent }}{{ if .enabled }}
      - alert: CertRotatorAbsent
        expr: absent(up{job="{{ $job }}"} == 1)
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: No cert-rotator controller is up
          description: >-
            No target of job {{ $job }} has been up for {{ .for }}: certificates are neither renewed
            nor monitored.
{{- end }}{{ end }}
{{- if include "cert-rotator.x509Enabled" . }}
{{- /* The x509 family (docs/monitoring.md), only when a source of it is on. One series per
       certificate across replicas: max by every label but job, instance and pod. */ -}}
{{- $xby := "source, namespace, name, key, index, subject_cn, issuer_cn, node" -}}
{{- $hooks := "source=~\"validatingwebhook|mutatingwebhook|apiservice|crdconversion\"" -}}
{{- $others := "source!~\"validatingwebhook|mutatingwebhook|apiservice|crdconversion\"" -}}
{{- $where := "{{ $labels.source }} {{ if $labels.namespace }}{{ $labels.namespace }}/{{ end }}{{ $labels.name }}{{ if $labels.key }} key {{ $labels.key }}{{ end }}{{ if $labels.node }} on node {{ $labels.node }}{{ end }}" }}
  - name: cert-rotator-x509
    rules:
{{- with $a.x509WebhookExpiring }}{{ if .enabled }}
      - alert: CertRotatorWebhookCABundleExpiring
        expr: max by ({{ $xby }}) (cert_rotator_x509_not_after_timestamp_seconds{ {{- $hooks -}} }) - time() < {{ .days }} * 86400
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: The CA bundle of {{ $where }} expires in {{ "{{ $value | humanizeDuration }}" }}
          description: >-
            Certificate {{ "{{ $labels.index }}" }} (CN {{ "{{ $labels.subject_cn }}" }}) of the caBundle of {{ $where }}
            expires in {{ "{{ $value | humanizeDuration }}" }}. Once it has, the API server cannot verify the
            webhook or API service and every request it handles fails. Replace the caBundle (and the
            serving certificate it verifies) before then.
{{- end }}{{ end }}
{{- with $a.x509ExpiringSoon }}{{ if .enabled }}
      - alert: CertRotatorX509CertificateExpiringSoon
        expr: max by ({{ $xby }}) (cert_rotator_x509_not_after_timestamp_seconds{ {{- $others -}} }) - time() < {{ .days }} * 86400{{ if $a.x509ExpiringCritical.enabled }} >= {{ $a.x509ExpiringCritical.days }} * 86400{{ end }}
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: A certificate in {{ $where }} expires in less than {{ .days }} days
          description: >-
            Certificate {{ "{{ $labels.index }}" }} (CN {{ "{{ $labels.subject_cn }}" }}, issuer {{ "{{ $labels.issuer_cn }}" }}) in {{ $where }}
            expires in {{ "{{ $value | humanizeDuration }}" }}.
{{- end }}{{ end }}
{{- with $a.x509ExpiringCritical }}{{ if .enabled }}
      - alert: CertRotatorX509CertificateExpiringCritical
        expr: max by ({{ $xby }}) (cert_rotator_x509_not_after_timestamp_seconds{ {{- $others -}} }) - time() < {{ .days }} * 86400 > 0
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: A certificate in {{ $where }} expires in less than {{ .days }} days
          description: >-
            Certificate {{ "{{ $labels.index }}" }} (CN {{ "{{ $labels.subject_cn }}" }}, issuer {{ "{{ $labels.issuer_cn }}" }}) in {{ $where }}
            expires in {{ "{{ $value | humanizeDuration }}" }}.
{{- end }}{{ end }}
{{- with $a.x509Expired }}{{ if .enabled }}
      - alert: CertRotatorX509CertificateExpired
        expr: time() - max by ({{ $xby }}) (cert_rotator_x509_not_after_timestamp_seconds) >= 0
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: A certificate in {{ $where }} has expired
          description: >-
            Certificate {{ "{{ $labels.index }}" }} (CN {{ "{{ $labels.subject_cn }}" }}) in {{ $where }} expired
            {{ "{{ $value | humanizeDuration }}" }} ago.
{{- end }}{{ end }}
{{- with $a.x509ReadErrors }}{{ if .enabled }}
      - alert: CertRotatorX509ReadErrors
        expr: max by (source, namespace, name, key, reason, node) (cert_rotator_x509_read_errors) > 0
        for: {{ .for }}
        labels:
          severity: {{ .severity }}
        annotations:
          summary: Certificates in {{ $where }} cannot be read ({{ "{{ $labels.reason }}" }})
          description: >-
            The certificates in {{ $where }} cannot be read: {{ "{{ $labels.reason }}" }}. Their expiry is not
            monitored. The CertificateUnreadable event on the object (or the monitor's log) says why.
{{- end }}{{ end }}
{{- end }}
{{- end -}}
