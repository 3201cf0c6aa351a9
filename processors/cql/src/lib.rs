//! A CQL v4 server over kassandra's in-memory engine.
//!
//! No ScyllaDB or Cassandra can be installed on the machines troupe is developed and tested on,
//! so the local stack runs this instead; production runs real ScyllaDB. What it reproduces and
//! what it does not is listed in `docs/local-stack.md`. The engine is shared by all
//! connections behind one mutex; statements must name their keyspace (`USE` switches the
//! keyspace of the shared session, i.e. of every connection).

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use kassandra::error::DbError;
use kassandra::frame::request::{Request, RequestOpcode};
use kassandra::frame::response::error::Error as CqlError;
use kassandra::frame::response::Response;
use kassandra::frame::{request_stream, response_sink};
use kassandra::KassandraSession;
use tokio::net::{TcpListener, TcpStream};

/// The server: one shared in-memory engine.
#[derive(Debug, Clone, Default)]
pub struct CqlServer {
    session: Arc<Mutex<KassandraSession>>,
}

impl CqlServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts connections until the future is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(%peer, "cql client connected");
                    tokio::spawn(self.clone().connection(stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn connection(self, mut stream: TcpStream) {
        let (mut read, mut write) = stream.split();
        let mut requests = request_stream(&mut read);
        let mut responses = response_sink(&mut write);
        while let Some(frame) = requests.next().await {
            let (params, opcode, data) = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    tracing::debug!(%error, "cql connection closed on a bad frame");
                    break;
                }
            };
            let response = self.respond(opcode, &data, params.flags);
            if responses.send((response, params.stream)).await.is_err() {
                break;
            }
        }
    }

    fn respond(
        &self,
        opcode: RequestOpcode,
        data: &[u8],
        flags: kassandra::frame::FrameFlags,
    ) -> Response {
        if opcode == RequestOpcode::AuthResponse {
            return error(DbError::ProtocolError, "authentication is not supported");
        }
        let request = match Request::deserialize(opcode, data, flags) {
            Ok(request) => request,
            Err(e) => return Response::Error(e),
        };
        // The engine has panicking paths; a panic answers this request with an error instead
        // of killing the connection task and poisoning the engine for everyone.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.execute(request)));
        outcome.unwrap_or_else(|_| {
            error(
                DbError::ServerError,
                "the CQL engine failed on this request",
            )
        })
    }

    fn execute(&self, request: Request<'_>) -> Response {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let result = match request {
            Request::StartUp(_) | Request::Register { .. } => return Response::Ready,
            Request::Options => return Response::options(),
            Request::AuthResponse => {
                return error(DbError::ProtocolError, "authentication is not supported")
            }
            Request::Query(query) => session.process(query),
            Request::Prepare(query) => session.prepare(query),
            Request::Execute(execute) => session.execute(execute),
            Request::Batch(batch) => session.process_batch(batch),
        };
        match result {
            Ok(result) => Response::Result(result),
            Err(e) => Response::Error(e),
        }
    }
}

fn error(kind: DbError, message: &str) -> Response {
    Response::Error(CqlError::new(kind, message))
}
