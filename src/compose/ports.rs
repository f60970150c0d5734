//! Service ports: the short syntax (`"80"`, `"8080:80"`,
//! `"127.0.0.1:9000-9001:9000-9001/udp"`) expanded into one long-form entry
//! per port, as docker/cli does with `nat.ParsePortSpec`.
use super::model::ServicePortConfig;

/// One short-syntax port spec -> long-form entries, plus a warning when a
/// host IP is given (swarm publishes on every address).
pub fn parse_port_spec(spec: &str) -> Result<(Vec<ServicePortConfig>, Option<String>), String> {
    let bad = |why: &str| {
        format!("invalid port {spec:?}: {why}; expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL], e.g. \"8080:80\" or \"9000-9001:9000-9001/udp\"")
    };
    let (raw, proto) = match spec.split_once('/') {
        Some((r, "")) => (r, "tcp".to_string()),
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("unknown protocol (valid: tcp, udp, sctp)"));
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (ip, host) = match n {
        1 => ("".to_string(), ""),
        2 => ("".to_string(), parts[0]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    if container.is_empty() {
        return Err(bad("no target port"));
    }
    if !ip.is_empty() {
        let bare = ip.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_err() {
            return Err(bad("invalid host IP"));
        }
    }
    let (c_start, c_end) = parse_range(container).ok_or_else(|| bad("invalid target port"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_range(host).ok_or_else(|| bad("invalid published port"))?)
    };
    let mut out = Vec::new();
    let entry = |target: u32, published: Option<u32>| ServicePortConfig {
        mode: Some("ingress".to_string()),
        target: Some(target),
        published,
        protocol: Some(proto.clone()),
    };
    match host_range {
        None => {
            for t in c_start..=c_end {
                out.push(entry(t, None));
            }
        }
        Some((h_start, h_end)) if c_start == c_end && h_end > h_start => {
            for h in h_start..=h_end {
                out.push(entry(c_start, Some(h)));
            }
        }
        Some((h_start, h_end)) => {
            if h_end - h_start != c_end - c_start {
                return Err(bad("published and target ranges differ in length"));
            }
            for i in 0..=(c_end - c_start) {
                out.push(entry(c_start + i, Some(h_start + i)));
            }
        }
    }
    let warning = (!ip.is_empty())
        .then(|| format!("ignoring IP-address ({spec}): swarm services listen on '0.0.0.0'"));
    Ok((out, warning))
}

fn parse_range(s: &str) -> Option<(u32, u32)> {
    let port = |p: &str| -> Option<u32> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u32>().ok().filter(|&v| v <= 65535)
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(spec: &str) -> Vec<(u32, Option<u32>, String)> {
        parse_port_spec(spec)
            .unwrap()
            .0
            .into_iter()
            .map(|p| (p.target.unwrap(), p.published, p.protocol.unwrap()))
            .collect()
    }

    #[test]
    fn short_forms() {
        assert_eq!(short("80"), vec![(80, None, "tcp".into())]);
        assert_eq!(short("8080:80"), vec![(80, Some(8080), "tcp".into())]);
        assert_eq!(short("53:53/udp"), vec![(53, Some(53), "udp".into())]);
        assert_eq!(
            short("127.0.0.1:9000-9001:9000-9001/udp"),
            vec![
                (9000, Some(9000), "udp".into()),
                (9001, Some(9001), "udp".into())
            ]
        );
        assert_eq!(
            short("8000-8001:80"),
            vec![
                (80, Some(8000), "tcp".into()),
                (80, Some(8001), "tcp".into())
            ]
        );
        assert_eq!(
            short("3000-3001"),
            vec![(3000, None, "tcp".into()), (3001, None, "tcp".into())]
        );
        assert!(parse_port_spec("127.0.0.1:80:80").unwrap().1.is_some());
        assert_eq!(parse_port_spec("[::1]:80:80").unwrap().0.len(), 1);
    }

    #[test]
    fn bad_ports() {
        for s in [
            "x:80",
            "80:",
            "",
            "70000",
            "80/foo",
            "9000-9001:80-82",
            "5-3",
            "1.2.3:80:80",
        ] {
            let e = parse_port_spec(s).unwrap_err();
            assert!(e.contains("expected [HOST_IP:]"), "{s}: {e}");
        }
    }
}
