//! rudder's web dashboard: a page of hand-written ES modules and CSS, embedded in the binary,
//! and the router that serves it under `/dashboard/` on the API server's port.
//!
//! The assets are public (like upstream's dashboard): they hold no data. Every API call the
//! page makes carries the user's bearer token and is authenticated and authorized by the API
//! server as any other request (ADR 0022, `docs/dashboard.md`). Because the assets are compiled
//! into the binary, there is no build step and no CDN: what a browser runs is what is in
//! `assets/`.

use http::{HeaderMap, Method, Response, StatusCode, header};

/// Where the dashboard lives on the API server's port.
pub const PREFIX: &str = "/dashboard";

/// The Content-Security-Policy of every response: only this origin's scripts, styles and API;
/// no inline script or style, no framing, no plugins, forms post nowhere else. The page builds
/// its DOM with `createElement`/`textContent`, so object data never becomes markup.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// FNV-1a of the body, computed at compile time: a strong validator for `If-None-Match`.
    hash: u64,
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $name)),
            hash: fnv1a(include_bytes!(concat!("../assets/", $name))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("yaml.js", JS),
    asset!("views/overview.js", JS),
    asset!("views/workloads.js", JS),
    asset!("views/pods.js", JS),
    asset!("views/events.js", JS),
    asset!("views/pod.js", JS),
    asset!("views/deployment.js", JS),
];

/// Serves a request if its path is the dashboard's; `None` for every other path, which the
/// caller routes as usual.
///
/// `/dashboard` redirects to `/dashboard/` (so the page's relative module URLs resolve), which
/// is the page; unknown names under the prefix are 404. Only GET and HEAD are allowed.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<&'static [u8]>> {
    let rest = path.strip_prefix(PREFIX)?;
    if rest.is_empty() {
        return Some(respond(
            StatusCode::MOVED_PERMANENTLY,
            &[(header::LOCATION, "/dashboard/")],
            b"",
        ));
    }
    let name = rest.strip_prefix('/')?;
    if method != Method::GET && method != Method::HEAD {
        return Some(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            &[
                (header::ALLOW, "GET, HEAD"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            b"method not allowed\n",
        ));
    }
    let name = if name.is_empty() { "index.html" } else { name };
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return Some(respond(
            StatusCode::NOT_FOUND,
            &[(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            b"not found\n",
        ));
    };
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, &b""[..])
    } else if method == Method::HEAD {
        (StatusCode::OK, &b""[..])
    } else {
        (StatusCode::OK, asset.body)
    };
    let mut resp = respond(
        status,
        &[
            (header::CONTENT_TYPE, asset.content_type),
            // The assets change only with the binary: revalidate every time (a 304 is cheap),
            // so an upgraded server never runs a stale mix of old and new modules.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    );
    if let Ok(v) = http::HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Some(resp)
}

fn respond(
    status: StatusCode,
    extra: &[(header::HeaderName, &'static str)],
    body: &'static [u8],
) -> Response<&'static [u8]> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        http::HeaderValue::from_static("DENY"),
    );
    for (name, value) in extra {
        h.insert(name.clone(), http::HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Response<&'static [u8]>> {
        serve(&Method::GET, path, &HeaderMap::new())
    }

    #[test]
    fn other_paths_are_not_ours() {
        assert!(get("/api/v1/pods").is_none());
        assert!(get("/dashboards").is_none());
        assert!(get("/").is_none());
    }

    #[test]
    fn the_bare_prefix_redirects_to_the_page() {
        let r = get("/dashboard").expect("ours");
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()[header::LOCATION], "/dashboard/");
    }

    #[test]
    fn the_page_and_modules_have_their_types_and_a_strict_policy() {
        let page = get("/dashboard/").expect("ours");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(std::str::from_utf8(page.body()).is_ok_and(|b| b.contains("app.js")));
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        let js = get("/dashboard/views/pods.js").expect("ours");
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(js.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(js.headers()[header::CACHE_CONTROL], "no-cache");
    }

    #[test]
    fn every_module_imported_is_embedded() {
        // A module the page imports but the table lacks would 404 only in a browser.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['\'', '"']).nth(1) else {
                    continue;
                };
                let base = a.name.rsplit_once('/').map_or("", |(d, _)| d);
                let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|b| b.name == target),
                    "{} imports {spec} ({target}), which is not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn etags_revalidate() {
        let first = get("/dashboard/app.js").expect("ours");
        let etag = first.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let again = serve(&Method::GET, "/dashboard/app.js", &h).expect("ours");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.body().is_empty());
    }

    #[test]
    fn unknown_names_and_writes_are_refused() {
        assert_eq!(
            get("/dashboard/../kubeconfig").map(|r| r.status()),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            serve(&Method::POST, "/dashboard/", &HeaderMap::new()).map(|r| r.status()),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        let head = serve(&Method::HEAD, "/dashboard/style.css", &HeaderMap::new()).expect("ours");
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().is_empty());
    }
}
