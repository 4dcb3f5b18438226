//! The little HTTP/1.1 the server needs, over `std::net`: one request per connection
//! (`Connection: close`), bodies by `Content-Length` only, bounded header and body
//! sizes, a read timeout, and responses written (and flushed) directly, so a
//! server-sent-event stream reaches the client token by token and a client that went
//! away shows up as a failed write.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Bytes of request line and headers a request may have.
const MAX_HEAD: usize = 16 << 10;

pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read: the status and message to answer with (None: the
/// client sent nothing or went away; just close).
pub type ReadError = Option<(u16, String)>;

/// Read one request from `stream`, with a body of at most `max_body` bytes.
pub fn read_request(stream: &TcpStream, max_body: usize) -> Result<HttpRequest, ReadError> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|_| None)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|_| None)?);
    let mut head = 0usize;
    let mut line = String::new();
    let mut read_line = |reader: &mut BufReader<TcpStream>, line: &mut String| {
        line.clear();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - head + 1) as u64)
            .read_line(line)
            .map_err(|_| None)?;
        head += n;
        if head > MAX_HEAD {
            return Err(Some((431, "the request head is too large".to_string())));
        }
        Ok(n)
    };
    if read_line(&mut reader, &mut line)? == 0 {
        return Err(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Some((400, "malformed request line".into())));
    };
    let method = method.to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        if read_line(&mut reader, &mut line)? == 0 {
            return Err(None);
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(Some((400, format!("malformed header line `{l}`"))));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let req = HttpRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|t| !t.eq_ignore_ascii_case("identity"))
    {
        return Err(Some((411, "send the body with a Content-Length".into())));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| Some((400, format!("Content-Length `{v}` is not a number"))))?,
    };
    if len > max_body {
        // Read what was sent (up to a bound) so closing does not reset the connection
        // before the client has read the answer.
        let _ = std::io::copy(
            &mut reader.by_ref().take(len.min(64 << 20) as u64),
            &mut std::io::sink(),
        );
        return Err(Some((
            413,
            format!("the body is {len} bytes, over the server's limit of {max_body}"),
        )));
    }
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        let mut w = stream;
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| None)?;
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(|_| None)?;
    Ok(HttpRequest { body, ..req })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Write a whole JSON response and close.
pub fn respond_json(stream: &TcpStream, status: u16, body: &serde_json::Value) {
    let text = body.to_string();
    let mut w = stream;
    let _ = write!(
        w,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        reason(status),
        text.len()
    );
    let _ = w.flush();
}

/// An OpenAI-style error body.
pub fn respond_error(stream: &TcpStream, status: u16, message: &str, param: Option<&str>) {
    let kind = match status {
        401 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500 => "server_error",
        503 => "service_unavailable",
        _ => "invalid_request_error",
    };
    respond_json(
        stream,
        status,
        &serde_json::json!({"error": {"message": message, "type": kind, "param": param, "code": null}}),
    );
}

/// Server-sent events: the head, then `send` per event. A failed write means the
/// client went away.
pub struct EventStream<'a> {
    stream: &'a TcpStream,
}

impl<'a> EventStream<'a> {
    pub fn start(stream: &'a TcpStream) -> std::io::Result<Self> {
        let mut w = stream;
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")?;
        w.flush()?;
        Ok(EventStream { stream })
    }

    pub fn send(&mut self, data: &str) -> std::io::Result<()> {
        let mut w = self.stream;
        w.write_all(format!("data: {data}\n\n").as_bytes())?;
        w.flush()
    }
}
