//! The DNS server: a hickory-server request handler that answers from the current
//! [`Index`] and forwards names outside the cluster domain to the node's resolvers.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::forward;
use crate::index::{self, Answer, Data, Index, QType};

/// SOA timers (CoreDNS's): refresh, retry, expire; the minimum (negative-caching TTL) is
/// [`index::TTL`].
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;
/// How long one upstream gets to answer a forwarded question.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The index the handler answers from, replaced whole by the watchers.
pub type SharedIndex = Arc<RwLock<Arc<Index>>>;

/// Answers DNS requests.
pub struct Handler {
    index: SharedIndex,
    upstreams: Vec<SocketAddr>,
    /// Serial of the zone's SOA: when this server started, so it grows across restarts.
    serial: u32,
}

impl Handler {
    /// A handler answering from `index` and forwarding to `upstreams` (tried in order).
    pub fn new(index: SharedIndex, upstreams: Vec<SocketAddr>) -> Self {
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        Self {
            index,
            upstreams,
            serial,
        }
    }

    fn current(&self) -> Arc<Index> {
        match self.index.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn soa(&self, zone: &Name) -> Result<Record, String> {
        let mname = Name::from_ascii("ns.dns")
            .and_then(|n| n.append_domain(zone))
            .map_err(|e| e.to_string())?;
        let rname = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(zone))
            .map_err(|e| e.to_string())?;
        Ok(Record::from_rdata(
            zone.clone(),
            index::TTL,
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                index::TTL,
            )),
        ))
    }

    fn to_wire(&self, r: &index::Record, zone: &Name) -> Result<Record, String> {
        let fqdn = |s: &str| Name::from_ascii(format!("{s}.")).map_err(|e| e.to_string());
        let rdata = match &r.data {
            Data::A(ip) => RData::A(A(*ip)),
            Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Data::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
            Data::Ptr(t) => RData::PTR(PTR(fqdn(t)?)),
            Data::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
            Data::Srv { port, target } => RData::SRV(SRV::new(0, 100, *port, fqdn(target)?)),
            Data::Soa => return self.soa(zone),
        };
        Ok(Record::from_rdata(fqdn(&r.name)?, index::TTL, rdata))
    }

    /// The response to `request`: from the index, or from an upstream.
    async fn answer(&self, request: &Request) -> Result<Message, String> {
        let info = request.request_info().map_err(|e| e.to_string())?;
        let query = info.query;
        let qname = query.name().to_string();
        let qtype = qtype(query.query_type());
        let ix = self.current();
        let mut msg = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        msg.metadata.recursion_desired = request.metadata.recursion_desired;
        msg.metadata.recursion_available = true;
        let zone = Name::from_ascii(format!("{}.", ix.zone())).map_err(|e| e.to_string())?;
        match ix.lookup(&qname, qtype) {
            Answer::Forward => {
                let reply = forward::query(
                    &self.upstreams,
                    request.as_slice(),
                    request.protocol(),
                    FORWARD_TIMEOUT,
                )
                .await?;
                let mut reply = Message::from_vec(&reply).map_err(|e| e.to_string())?;
                reply.metadata.id = request.metadata.id;
                return Ok(reply);
            }
            Answer::NxDomain => {
                msg.metadata.authoritative = true;
                msg.metadata.response_code = ResponseCode::NXDomain;
                msg.authorities.push(self.soa(&zone)?);
            }
            Answer::Found {
                answers,
                additionals,
            } => {
                msg.metadata.authoritative = true;
                if answers.is_empty() {
                    msg.authorities.push(self.soa(&zone)?);
                }
                for r in &answers {
                    msg.answers.push(self.to_wire(r, &zone)?);
                }
                for r in &additionals {
                    msg.additionals.push(self.to_wire(r, &zone)?);
                }
            }
        }
        Ok(msg)
    }
}

/// The index's view of a record type.
fn qtype(t: RecordType) -> QType {
    match t {
        RecordType::A => QType::A,
        RecordType::AAAA => QType::Aaaa,
        RecordType::SRV => QType::Srv,
        RecordType::PTR => QType::Ptr,
        RecordType::TXT => QType::Txt,
        RecordType::SOA => QType::Soa,
        RecordType::ANY => QType::Any,
        _ => QType::Other,
    }
}

fn header(metadata: Metadata) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut fail = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
        fail.recursion_desired = request.metadata.recursion_desired;
        fail.recursion_available = true;
        let msg = if request.metadata.message_type != MessageType::Query {
            fail.response_code = ResponseCode::FormErr;
            Err(fail)
        } else if request.metadata.op_code != OpCode::Query {
            fail.response_code = ResponseCode::NotImp;
            Err(fail)
        } else {
            self.answer(request).await.map_err(|e| {
                tracing::debug!(error = %e, "dns request failed");
                fail.response_code = ResponseCode::ServFail;
                fail
            })
        };
        let sent = match &msg {
            Ok(m) => {
                let built = builder.build(
                    m.metadata,
                    m.answers.iter(),
                    m.authorities.iter(),
                    std::iter::empty(),
                    m.additionals.iter(),
                );
                response_handle.send_response(built).await
            }
            Err(meta) => {
                response_handle
                    .send_response(builder.build_no_records(*meta))
                    .await
            }
        };
        match sent {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending a dns response");
                header(msg.map_or_else(|m| m, |m| m.metadata))
            }
        }
    }
}
