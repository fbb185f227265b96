//! Serves the live metrics of a run in the Prometheus text format, on the address given to
//! `--metrics-addr`, for as long as the run lasts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pipeline::metrics::Metrics;

/// A running metrics endpoint; [`MetricsServer::stop`] ends it.
#[derive(Debug)]
pub struct MetricsServer {
    address: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `address` and answers every request with the current metrics.
    pub fn start(
        address: SocketAddr,
        metrics: Arc<Metrics>,
        workers: usize,
        memory_budget: u64,
    ) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(address)?;
        let address = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let thread = {
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("mlpipe-metrics".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::Acquire) {
                            break;
                        }
                        if let Ok(stream) = stream {
                            let body = metrics
                                .report(started.elapsed(), workers, memory_budget)
                                .prometheus();
                            // A client that hangs up early is its own problem, not the run's.
                            let _ = answer(stream, &body);
                        }
                    }
                })?
        };
        Ok(MetricsServer {
            address,
            stopping,
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the accept loop with one last connection.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 4096];
    let _ = stream.read(&mut request)?;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_metrics_in_prometheus_format() {
        let metrics = Arc::new(Metrics::default());
        metrics.sink.record_batch(42, 336, Duration::from_millis(3));
        let server =
            MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics, 2, 1 << 20).unwrap();
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(
            response.contains("mlpipe_rows_total{stage=\"sink\"} 42"),
            "{response}"
        );
        assert!(
            response.contains("# TYPE mlpipe_memory_budget_bytes gauge"),
            "{response}"
        );
        server.stop();
    }
}
