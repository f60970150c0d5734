//! TLS to the Engine as the docker CLI does it: TLS 1.2 or newer, the
//! endpoint's CA alone (else the system's roots), the client certificate
//! and key when present, server name checked unless the operator passed
//! `--insecure-skip-tls-verify`. Failures are explained naming the engine
//! and the files involved.
use super::endpoint::TlsEndpoint;
use std::path::Path;

/// A connector for `t`, with its files read and checked now (so a bad file
/// is an error before any connection).
pub fn connector(t: &TlsEndpoint) -> Result<tokio_native_tls::TlsConnector, String> {
    let mut b = native_tls::TlsConnector::builder();
    b.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if let Some(ca) = &t.ca {
        let pem = read(t, ca)?;
        let certs = openssl::x509::X509::stack_from_pem(&pem)
            .map_err(|e| format!("{}: {}: not a PEM certificate: {e}", t.origin, ca.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{}: {}: no certificate in it",
                t.origin,
                ca.display()
            ));
        }
        b.disable_built_in_roots(true);
        for cert in certs {
            let der = cert
                .to_der()
                .map_err(|e| format!("{}: {}: {e}", t.origin, ca.display()))?;
            let cert = native_tls::Certificate::from_der(&der)
                .map_err(|e| format!("{}: {}: {e}", t.origin, ca.display()))?;
            b.add_root_certificate(cert);
        }
    }
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(t, cert)?;
            // native-tls takes PKCS#8 only; docker's keys are often PKCS#1
            // (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`).
            let key_pem = read(t, key)?;
            let pkey = openssl::pkey::PKey::private_key_from_pem(&key_pem).map_err(|e| {
                format!(
                    "{}: {}: not a PEM private key (or it is encrypted): {e}",
                    t.origin,
                    key.display()
                )
            })?;
            let pkcs8 = pkey
                .private_key_to_pem_pkcs8()
                .map_err(|e| format!("{}: {}: {e}", t.origin, key.display()))?;
            let identity = native_tls::Identity::from_pkcs8(&cert_pem, &pkcs8).map_err(|e| {
                format!(
                    "{}: {} with {}: not a usable certificate and key: {e}",
                    t.origin,
                    cert.display(),
                    key.display()
                )
            })?;
            b.identity(identity);
        }
        (Some(cert), None) => {
            return Err(format!(
                "{}: {} has no key.pem next to it",
                t.origin,
                cert.display()
            ))
        }
        (None, Some(key)) => {
            return Err(format!(
                "{}: {} has no cert.pem next to it",
                t.origin,
                key.display()
            ))
        }
        (None, None) => {}
    }
    if t.skip_verify {
        b.danger_accept_invalid_certs(true);
        b.danger_accept_invalid_hostnames(true);
    }
    b.build()
        .map(tokio_native_tls::TlsConnector::from)
        .map_err(|e| format!("{}: cannot set up TLS: {e}", t.origin))
}

fn read(t: &TlsEndpoint, path: &Path) -> Result<Vec<u8>, String> {
    // Certificates are small; a bound keeps a wrong path (a device, a huge
    // file) from costing memory.
    const LIMIT: u64 = 1 << 20;
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(LIMIT).read_to_end(&mut out))
        .map_err(|e| format!("{}: cannot read {}: {e}", t.origin, path.display()))?;
    Ok(out)
}

/// Turn a TLS failure (handshake, or the first read when the engine
/// rejects the client certificate after a TLS 1.3 handshake) into a
/// sentence naming the engine and the files.
pub fn explain(t: &TlsEndpoint, detail: &str) -> String {
    let engine = format!("the docker engine at tcp://{}", t.addr);
    let has = |needle: &str| detail.contains(needle);
    if has("certificate verify failed") {
        let ca = match &t.ca {
            Some(ca) => format!("the CA in {}", ca.display()),
            None => format!("the system's CAs ({} has no ca.pem)", t.origin),
        };
        format!(
            "{engine}: its certificate is not trusted: not signed by {ca}, or not made for {} ({})",
            t.server_name,
            last_reason(detail)
        )
    } else if has("certificate required")
        || has("bad certificate")
        || has("unknown ca")
        || has("handshake failure")
        || has("certificate unknown")
    {
        match &t.cert {
            None => format!(
                "{engine} asks for a client certificate and {} has none (cert.pem and key.pem) ({})",
                t.origin,
                last_reason(detail)
            ),
            Some(cert) => format!(
                "{engine} refused the client certificate {}: it must be signed by a CA the engine trusts ({})",
                cert.display(),
                last_reason(detail)
            ),
        }
    } else if has("wrong version number")
        || has("packet length too long")
        || has("record layer failure")
    {
        format!(
            "{engine} does not speak TLS ({}); is it a plain tcp:// endpoint (then unset DOCKER_TLS_VERIFY)?",
            last_reason(detail)
        )
    } else {
        format!("{engine}: {detail}")
    }
}

/// The most specific part of an OpenSSL error chain.
fn last_reason(detail: &str) -> String {
    let reason = detail
        .split(':')
        .map(str::trim)
        .rfind(|part| {
            part.contains("certificate")
                || part.contains("alert")
                || part.contains("version")
                || part.contains("failure")
        })
        .unwrap_or(detail.trim());
    let reason = reason.trim_start_matches('(').trim_end_matches(')');
    reason.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn endpoint(cert: Option<&str>) -> TlsEndpoint {
        TlsEndpoint {
            addr: "10.0.0.2:2376".into(),
            server_name: "10.0.0.2".into(),
            ca: Some(PathBuf::from("/certs/ca.pem")),
            cert: cert.map(PathBuf::from),
            key: cert.map(|_| PathBuf::from("/certs/key.pem")),
            skip_verify: false,
            origin: "DOCKER_CERT_PATH=/certs".into(),
        }
    }

    #[test]
    fn explains_the_usual_failures() {
        let m = explain(
            &endpoint(None),
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889: (unable to get local issuer certificate)",
        );
        assert!(m.contains("tcp://10.0.0.2:2376"), "{m}");
        assert!(m.contains("not signed by the CA in /certs/ca.pem"), "{m}");
        let m = explain(
            &endpoint(None),
            "error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required",
        );
        assert!(
            m.contains("asks for a client certificate and DOCKER_CERT_PATH=/certs has none"),
            "{m}"
        );
        let m = explain(
            &endpoint(Some("/certs/cert.pem")),
            "error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca",
        );
        assert!(
            m.contains("refused the client certificate /certs/cert.pem"),
            "{m}"
        );
        let m = explain(
            &endpoint(None),
            "error:0A00010B:SSL routines:ssl3_get_record:wrong version number",
        );
        assert!(m.contains("does not speak TLS"), "{m}");
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = endpoint(None);
        t.ca = Some(dir.path().join("ca.pem"));
        let err = connector(&t).unwrap_err();
        assert!(
            err.contains("cannot read") && err.contains("ca.pem"),
            "{err}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not a cert").unwrap();
        let err = connector(&t).unwrap_err();
        assert!(err.contains("ca.pem"), "{err}");
        t.ca = None;
        t.cert = Some(dir.path().join("cert.pem"));
        let err = connector(&t).unwrap_err();
        assert!(err.contains("has no key.pem"), "{err}");
    }
}
