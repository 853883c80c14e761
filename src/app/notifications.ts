/**
 * Notices and notifications, wired: the expiry notices (Warning Events, recorded in
 * cert-rotator's ConfigMaps) and, with `notifications.webhooks`, the alerts they and the
 * renewal outcomes raise and resolve at Alertmanager or a JSON webhook.
 */
import { systemClock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { SecretController } from '../controller/controller.ts';
import { ExpiryNotices, type Notice } from '../controller/notices.ts';
import type { CoreV1Api } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import { ConfigMapNoticeStore } from '../kube/notice-store.ts';
import { AlertName, EventReason } from '../names.ts';
import { WebhookNotifier } from '../notify/webhook.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface NotificationDeps {
  config: Config;
  core: CoreV1Api;
  /** Where the notice record lives: the Lease's namespace. */
  namespace: string;
  events: EventRecorder;
  metrics: Metrics;
  log: Logger;
  controller: SecretController;
  isLeader?: () => boolean;
}

export interface Notifications {
  start(): void;
  stop(): Promise<void>;
}

export function startNotifications(d: NotificationDeps): Notifications {
  const { config, events, metrics, log } = d;
  const notifier =
    config.notifications.webhooks.length > 0
      ? new WebhookNotifier({
          webhooks: config.notifications.webhooks,
          resendIntervalMs: config.notifications.resendIntervalMs,
          clock: systemClock,
          log,
          onAttempt: (webhook, ok) =>
            metrics.notifications.inc({ webhook, result: ok ? 'success' : 'failure' }),
          onDropped: (webhook, n) => metrics.notifications.inc({ webhook, result: 'dropped' }, n),
        })
      : undefined;
  if (notifier) {
    // Renewal outcomes reach the notifier through the Events the controller records.
    const observe = events.listener;
    events.listener = (ref, type, reason, message, at) => {
      observe?.(ref, type, reason, message, at);
      if (ref.kind !== 'Secret') return;
      const key = `${ref.namespace}/${ref.name}`;
      if (reason === EventReason.renewalFailed) {
        notifier.fire(`failed/${key}`, {
          labels: {
            alertname: AlertName.renewalFailed,
            namespace: ref.namespace,
            secret: ref.name,
            severity: 'warning',
          },
          annotations: {
            summary: `Renewal of the certificate in Secret ${key} failed`,
            description: message,
          },
        });
      } else if (reason === EventReason.renewed) {
        notifier.resolve(`failed/${key}`);
        notifier.resolve(`expiring/${key}`);
      }
    };
  }
  const thresholds = config.notices.thresholdsMs;
  // As the chart's rules: the longest threshold warns (expiringSoon), the shorter ones are critical.
  const severity = (t: number) =>
    thresholds.length > 1 && t === Math.max(...thresholds) ? 'warning' : 'critical';
  const alertNotice = (n: Notice, reason: string, message: string) => {
    const expired = reason === EventReason.certificateExpired;
    notifier?.fire(`expiring/${n.key}`, {
      labels: {
        alertname: expired ? AlertName.certificateExpired : AlertName.certificateExpiring,
        namespace: n.candidate.namespace,
        secret: n.candidate.name,
        severity: severity(n.thresholdMs),
        threshold: `${Math.round(n.thresholdMs / 1000)}s`,
      },
      annotations: {
        summary: `Certificate in Secret ${n.key} ${expired ? 'expired' : 'expires soon'}`,
        description: message,
      },
    });
  };
  const notices = config.notices.enabled
    ? new ExpiryNotices({
        thresholdsMs: thresholds,
        graceMs: config.notices.graceMs,
        checkIntervalMs: config.notices.checkIntervalMs,
        candidates: () => d.controller.noticeCandidates(),
        store: new ConfigMapNoticeStore(d.core, d.namespace, log),
        events,
        log,
        clock: systemClock,
        synced: () => d.controller.ready(),
        ...(d.isLeader ? { isLeader: d.isLeader } : {}),
        ...(notifier
          ? { onNotice: alertNotice, onCleared: (key: string) => notifier.resolve(`expiring/${key}`) }
          : {}),
      })
    : undefined;
  return {
    start() {
      notices?.start();
      notifier?.start();
    },
    async stop() {
      await notices?.stop();
      await notifier?.stop();
    },
  };
}
