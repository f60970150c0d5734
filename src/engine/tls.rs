//! TLS to the Engine as the docker CLI does it: TLS 1.2 or newer, the
//! endpoint's CA alone (else the system's roots), the client certificate
//! and key when present, server name checked unless the operator passed
//! `--insecure-skip-tls-verify`. Failures are explained naming the engine
//! and the files involved.
use super::endpoint::TlsEndpoint;
use std::path::{Path, PathBuf};

/// Why the TLS material of an endpoint cannot be used. Messages start with
/// where the settings came from (`DOCKER_CERT_PATH=/x`, `docker context
/// "prod"`) and name the file; the underlying error is part of the text,
/// not a `source()`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{origin}: cannot read {}: {error}", path.display())]
    Unreadable {
        origin: String,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A CA, certificate or key file that is not usable.
    #[error("{origin}: {}: {reason}", path.display())]
    BadFile {
        origin: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{origin}: {} with {}: not a usable certificate and key: {reason}", cert.display(), key.display())]
    BadPair {
        origin: String,
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// A certificate without its key, or a key without its certificate.
    #[error("{origin}: {} has no {missing} next to it", present.display())]
    Unpaired {
        origin: String,
        present: PathBuf,
        missing: &'static str,
    },
    #[error("{origin}: cannot set up TLS: {reason}")]
    Setup { origin: String, reason: String },
}

/// A connector for `t`, with its files read and checked now (so a bad file
/// is an error before any connection).
pub fn connector(t: &TlsEndpoint) -> Result<tokio_native_tls::TlsConnector, TlsError> {
    let mut b = native_tls::TlsConnector::builder();
    b.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if let Some(ca) = &t.ca {
        let pem = read(t, ca)?;
        let bad = |reason: String| bad_file(t, ca, reason);
        let certs = openssl::x509::X509::stack_from_pem(&pem)
            .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        b.disable_built_in_roots(true);
        for cert in certs {
            let der = cert.to_der().map_err(|e| bad(e.to_string()))?;
            let cert = native_tls::Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
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
                bad_file(
                    t,
                    key,
                    format!("not a PEM private key (or it is encrypted): {e}"),
                )
            })?;
            let pkcs8 = pkey
                .private_key_to_pem_pkcs8()
                .map_err(|e| bad_file(t, key, e.to_string()))?;
            let identity = native_tls::Identity::from_pkcs8(&cert_pem, &pkcs8).map_err(|e| {
                TlsError::BadPair {
                    origin: t.origin.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                    reason: e.to_string(),
                }
            })?;
            b.identity(identity);
        }
        (Some(present), None) => return Err(unpaired(t, present, "key.pem")),
        (None, Some(present)) => return Err(unpaired(t, present, "cert.pem")),
        (None, None) => {}
    }
    if t.skip_verify {
        b.danger_accept_invalid_certs(true);
        b.danger_accept_invalid_hostnames(true);
    }
    b.build()
        .map(tokio_native_tls::TlsConnector::from)
        .map_err(|e| TlsError::Setup {
            origin: t.origin.clone(),
            reason: e.to_string(),
        })
}

fn bad_file(t: &TlsEndpoint, path: &Path, reason: String) -> TlsError {
    TlsError::BadFile {
        origin: t.origin.clone(),
        path: path.to_path_buf(),
        reason,
    }
}

fn unpaired(t: &TlsEndpoint, present: &Path, missing: &'static str) -> TlsError {
    TlsError::Unpaired {
        origin: t.origin.clone(),
        present: present.to_path_buf(),
        missing,
    }
}

fn read(t: &TlsEndpoint, path: &Path) -> Result<Vec<u8>, TlsError> {
    // Certificates are small; a bound keeps a wrong path (a device, a huge
    // file) from costing memory.
    const LIMIT: u64 = 1 << 20;
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(LIMIT).read_to_end(&mut out))
        .map_err(|error| TlsError::Unreadable {
            origin: t.origin.clone(),
            path: path.to_path_buf(),
            error,
        })?;
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
        let err = connector(&t).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains("ca.pem"),
            "{err}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not a cert").unwrap();
        let err = connector(&t).unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
        t.ca = None;
        t.cert = Some(dir.path().join("cert.pem"));
        let err = connector(&t).unwrap_err().to_string();
        assert!(err.contains("has no key.pem"), "{err}");
    }
}
