/** The sidecar's line in `cert-rotator help`; its own module so the CLI loads nothing else of the sidecar. */
export const SIDECAR_USAGE = `  sidecar --dir DIR SOURCE   Keep certificate files fresh in a pod and tell the application to reload;
                             SOURCE is --secret NAME, --csr-signer NAME, --self-signed or
                             --ca-cert FILE --ca-key FILE. "cert-rotator sidecar --help" lists every flag.
`;
