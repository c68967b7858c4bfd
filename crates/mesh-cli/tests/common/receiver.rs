//! A local HTTP receiver for webhook and OpenLineage deliveries.
#![allow(dead_code, clippy::unwrap_used)]

/// One HTTP request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request line: `POST /path HTTP/1.1`.
    pub line: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

/// A local HTTP receiver on a loopback port: answers its first request 500 (to see the
/// retry) and every other 200; stops by itself after two minutes.
pub fn receiver(path: &str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let got: std::sync::Arc<std::sync::Mutex<Vec<Received>>> = Default::default();
    let into = got.clone();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, length) = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break (String::new(), 0);
                };
                if n == 0 {
                    break (String::new(), 0);
                }
                data.extend_from_slice(&buf[..n]);
                if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    data.drain(..end + 4);
                    break (head, length);
                }
            };
            while data.len() < length {
                let Ok(n) = stream.read(&mut buf) else { break };
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let mut all = into.lock().unwrap();
            let status = if all.is_empty() {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            all.push(Received {
                line: head.lines().next().unwrap_or_default().to_string(),
                headers,
                body: String::from_utf8_lossy(&data).into_owned(),
            });
            drop(all);
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, got)
}
