#!/usr/bin/env node
// `kubectl cert-rotator ...`: kubectl runs the first `kubectl-cert_rotator` on PATH with the
// arguments after the plugin name, so this is the same command line as `cert-rotator ...`.
import './cli.ts';
