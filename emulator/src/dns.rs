//! A small authoritative DNS server on 127.0.0.1 (UDP), standing in for tenants' public DNS, so
//! that cfsetup's lookups (the CNAME, A/AAAA and TXT records of a tenant's domain) are tested over
//! the wire with a real resolver.
//!
//! It answers from a table tests load ([`crate::Emulator::dns_set`], or
//! `POST /__emulator/dns {name, type, values}`): the records of the asked name and type; for an A
//! or AAAA question on a name that has a CNAME, the CNAME (and the target's records of that type
//! when the table has them), as a recursive resolver would. A name with no record at all is
//! NXDOMAIN; a known name without the asked type is an empty NOERROR. Types: A, AAAA, CNAME, TXT.
//! It must not import anything from the REST side: it only shares the table with `inspect`.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// (lowercase name without the trailing dot, type) → values.
pub type Table = BTreeMap<(String, String), Vec<String>>;

/// The running server: stopped when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    pub table: Arc<Mutex<Table>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    pub fn start() -> std::io::Result<DnsServer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        // Short, so a drop is noticed soon; not a timing assumption of any test.
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let table: Arc<Mutex<Table>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::Builder::new()
                .name("emulator-dns".into())
                .spawn(move || serve(&socket, &table, &stop))?
        };
        Ok(DnsServer {
            addr,
            table,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Normalises a name for the table: lowercase, no trailing dot.
pub fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks a record type and value the table accepts.
pub fn check(kind: &str, value: &str) -> Result<(), String> {
    match kind {
        "A" => value
            .parse::<std::net::Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("{value:?} is not an IPv4 address")),
        "AAAA" => value
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{value:?} is not an IPv6 address")),
        "CNAME" => Name::from_ascii(value)
            .map(|_| ())
            .map_err(|e| format!("{value:?} is not a name: {e}")),
        "TXT" => Ok(()),
        other => Err(format!(
            "record type {other} is not served (A, AAAA, CNAME, TXT)"
        )),
    }
}

fn serve(socket: &UdpSocket, table: &Mutex<Table>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let reply = answer(&query, &table.lock());
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

fn rdata(kind: &str, value: &str) -> Option<RData> {
    Some(match kind {
        "A" => RData::A(A(value.parse().ok()?)),
        "AAAA" => RData::AAAA(AAAA(value.parse().ok()?)),
        "CNAME" => RData::CNAME(CNAME(Name::from_ascii(fqdn(value)).ok()?)),
        "TXT" => RData::TXT(TXT::new(vec![value.to_string()])),
        _ => return None,
    })
}

fn fqdn(name: &str) -> String {
    format!("{}.", key(name))
}

fn records(table: &Table, name: &str, kind: &str) -> Vec<Record> {
    let Ok(owner) = Name::from_ascii(fqdn(name)) else {
        return Vec::new();
    };
    table
        .get(&(key(name), kind.to_string()))
        .into_iter()
        .flatten()
        .filter_map(|v| rdata(kind, v))
        .map(|r| Record::from_rdata(owner.clone(), 60, r))
        .collect()
}

fn answer(query: &Message, table: &Table) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(q) = query.queries().first() else {
        reply.set_response_code(ResponseCode::FormErr);
        return reply;
    };
    reply.add_query(q.clone());
    let name = key(&q.name().to_ascii());
    let kind = q.query_type().to_string();
    let mut answers = records(table, &name, &kind);
    if answers.is_empty() && matches!(q.query_type(), RecordType::A | RecordType::AAAA) {
        // Follow one CNAME, as a recursive resolver would.
        if let Some(target) = table
            .get(&(name.clone(), "CNAME".to_string()))
            .and_then(|v| v.first())
        {
            answers = records(table, &name, "CNAME");
            answers.extend(records(table, target, &kind));
        }
    }
    let known = table.keys().any(|(n, _)| *n == name);
    if answers.is_empty() && !known {
        reply.set_response_code(ResponseCode::NXDomain);
    } else {
        reply.add_answers(answers);
    }
    reply
}
