/** `cert-rotator monitor` usage, apart from the command so that `help` loads nothing else. */
export const MONITOR_USAGE = `  monitor --path DIR [--path DIR...] [--node NAME] [--strip-prefix P] [--password-file F]
                             Node mode: export the expiry of the certificate files (PEM, DER,
                             kubeconfigs, PKCS#12/JKS) under DIRs, labelled with the node.
      --interval D           How often the files are read again (default 5m).
      --metrics-address A    [host]:port for /metrics, /healthz, /readyz (default :9403).
      --node NAME            The node label (default: $NODE_NAME, else the host name).
      --strip-prefix P       Removed from the front of each path in the name label (e.g. /host).
      --password-file F      Password for the keystores found.
      --log-level LEVEL      trace, debug, info, warn, error (default: info).
`;
