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
{{- end -}}
