//! A fleet under load: N `load` processes share one local token endpoint and
//! API (a `load --serve-only` process), first each with its own cache only,
//! then with the shared tier on one `redis-server` this tool starts on
//! 127.0.0.1 (and stops). Prints, for both runs, the token requests per token
//! lifetime at the endpoint (the goal: N without the tier, 1 with it), the
//! Redis commands per API request, and the latency the tier adds to a miss.
//! `--fault stall` stops one load process (SIGSTOP) halfway through each run
//! for `--fault-for` seconds, then lets it go on (SIGCONT); `--fault flush`
//! empties Redis (FLUSHALL) halfway through.
//!
//! ```text
//! cargo build --release --features redis --example load --example fleet_load
//! target/release/examples/fleet_load --processes 8 --duration 30 --token-lifetime 2
//! ```
//!
//! Needs `redis-server` on the PATH (Debian: `apt-get install -y redis-server`).

#[path = "support/cli.rs"]
mod cli;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const USAGE: &str = "\
fleet_load: N load processes, without and with the shared tier

USAGE: target/release/examples/fleet_load [OPTIONS]
       (build first: cargo build --release --features redis --example load --example fleet_load)

  --processes N          load processes                               [8]
  --concurrency N        tasks per process                            [8]
  --duration SECS        each run                                     [30]
  --token-lifetime SECS  lifetime of the endpoint's tokens            [2]
  --token-latency MS     the endpoint's response time                 [20]
  --only MODE            run only `local` or `shared`
  --fault FAULT          halfway through each run: `stall` one process
                         (SIGSTOP, then SIGCONT), or `flush` Redis     [none]
  --fault-for SECS       how long a stalled process stays stopped      [3 lifetimes]
  --json PATH            also write both summaries as JSON to PATH
  -h, --help             this text
";

struct Args {
    processes: usize,
    concurrency: usize,
    duration: u64,
    lifetime: u64,
    latency: u64,
    only: Option<String>,
    fault: Option<Fault>,
    fault_for: Option<u64>,
    json: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    Stall,
    Flush,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        processes: 8,
        concurrency: 8,
        duration: 30,
        lifetime: 2,
        latency: 20,
        only: None,
        fault: None,
        fault_for: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        match flag.as_str() {
            "--processes" => args.processes = num(&flag, value()?)?,
            "--concurrency" => args.concurrency = num(&flag, value()?)?,
            "--duration" => args.duration = num(&flag, value()?)?,
            "--token-lifetime" => args.lifetime = num(&flag, value()?)?,
            "--token-latency" => args.latency = num(&flag, value()?)?,
            "--only" => args.only = Some(value()?),
            "--fault" => {
                args.fault = Some(match value()?.as_str() {
                    "stall" => Fault::Stall,
                    "flush" => Fault::Flush,
                    other => return Err(format!("--fault takes `stall` or `flush`, not {other}")),
                })
            }
            "--fault-for" => args.fault_for = Some(num(&flag, value()?)?),
            "--json" => args.json = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.processes == 0 || args.lifetime == 0 || args.duration == 0 {
        return Err("--processes, --token-lifetime and --duration must be at least 1".into());
    }
    if let Some(only) = &args.only {
        if only != "local" && only != "shared" {
            return Err("--only takes `local` or `shared`".into());
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match cli::flags_or_usage(parse_args(), USAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn run(args: &Args) -> Result<(), Error> {
    let load = sibling("load")?;
    let work = std::env::temp_dir().join(format!("tower-bearer-fleet-load-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let redis = Redis::start(&work)?;
    let mut runs = Vec::new();
    for shared in [false, true] {
        let mode = if shared { "shared" } else { "local" };
        if args.only.as_deref().is_some_and(|only| only != mode) {
            continue;
        }
        eprintln!(
            "fleet_load: {} processes x {} tasks, {} s, {} s tokens, {} ({mode})",
            args.processes,
            args.concurrency,
            args.duration,
            args.lifetime,
            if shared {
                "shared tier on Redis"
            } else {
                "each process on its own"
            }
        );
        runs.push(one_run(args, &load, &work, shared.then_some(&redis))?);
    }
    print_table(args, &runs);
    if let Some(path) = &args.json {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let summary = json!({
            "args": argv.join(" "),
            "processes": args.processes,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "token_lifetime_s": args.lifetime,
            "token_latency_ms": args.latency,
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")?;
        eprintln!("summary written to {path}");
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn one_run(args: &Args, load: &Path, work: &Path, redis: Option<&Redis>) -> Result<Value, Error> {
    let mut server = Server::start(load, args)?;
    let commands_before = redis.map(Redis::commands_processed).transpose()?;
    let started = Instant::now();
    let mut members: Vec<(PathBuf, Child)> = Vec::new();
    for i in 0..args.processes {
        let json = work.join(format!("member-{i}.json"));
        let mut command = Command::new(load);
        command
            .args([
                "--token-url",
                &server.token_url,
                "--api-url",
                &server.api_url,
            ])
            .args(["--concurrency", &args.concurrency.to_string()])
            .args(["--duration", &args.duration.to_string()])
            .args(["--json", json.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(redis) = redis {
            command.args(["--redis-url", &redis.url(), "--namespace", "fleet-load"]);
        }
        members.push((json, command.spawn()?));
    }
    let fault = match args.fault {
        Some(fault) => Some(inject(args, fault, &members, redis)?),
        None => None,
    };
    let mut summaries = Vec::new();
    for (json, mut child) in members {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a load process failed ({status})").into());
        }
        summaries.push(serde_json::from_str::<Value>(&std::fs::read_to_string(
            json,
        )?)?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_stats = server.finish()?;
    let commands_processed = match (redis, commands_before) {
        (Some(redis), Some(before)) => Some(redis.commands_processed()? - before),
        _ => None,
    };

    let sum = |f: &dyn Fn(&Value) -> u64| summaries.iter().map(f).sum::<u64>();
    let api_requests = server_stats["api_requests"].as_u64().unwrap_or(0);
    let tokens = server_stats["tokens_issued"].as_u64().unwrap_or(0);
    let lifetimes = args.duration as f64 / args.lifetime as f64;
    let errors =
        sum(&|s| s["requests"].as_u64().unwrap_or(0) - s["successes"].as_u64().unwrap_or(0));
    let mut run = json!({
        "mode": if redis.is_some() { "shared" } else { "local" },
        "processes": args.processes,
        "elapsed_s": (elapsed * 10.0).round() / 10.0,
        "api_requests": api_requests,
        "errors": errors,
        "expired_tokens_received": server_stats["expired_tokens_received"],
        "token_requests": tokens,
        "token_requests_per_lifetime": round2(tokens as f64 / lifetimes),
        "cache_fetches": sum(&|s| s["token_fetches"].as_u64().unwrap_or(0)),
        "waits_after_startup": sum(&|s| s["waits_after_startup"].as_u64().unwrap_or(0)),
        "fault": fault,
    });
    if redis.is_some() {
        let tier = |field: &str| sum(&|s| s["shared_tier"][field].as_u64().unwrap_or(0));
        let gather = |which: &str| -> Vec<u64> {
            summaries
                .iter()
                .filter_map(|s| s["shared_tier"]["miss_us"][which]["p50"].as_u64())
                .collect()
        };
        let max_of = |which: &str| {
            summaries
                .iter()
                .filter_map(|s| s["shared_tier"]["miss_us"][which]["max"].as_u64())
                .max()
        };
        let commands = tier("redis_commands");
        run["shared_tier"] = json!({
            "leases": tier("leases"),
            "served_shared": tier("served_shared"),
            "waits": tier("waits"),
            "fallbacks": tier("fallbacks"),
            "redis_errors": tier("redis_errors"),
            "redis_commands": commands,
            "redis_commands_per_api_request": commands as f64 / api_requests.max(1) as f64,
            "redis_commands_processed_by_the_server": commands_processed,
            "read_from_redis_us_p50_by_process": gather("read_from_redis"),
            "read_from_redis_us_max": max_of("read_from_redis"),
            "waited_us_p50_by_process": gather("waited_for_another_process"),
            "waited_us_max": max_of("waited_for_another_process"),
            "lease_holder_overhead_us_p50_by_process": gather("lease_holder_overhead"),
            "lease_holder_overhead_us_max": max_of("lease_holder_overhead"),
        });
    }
    Ok(run)
}

/// Halfway through the run, stalls one load process or flushes Redis; what
/// was done.
fn inject(
    args: &Args,
    fault: Fault,
    members: &[(PathBuf, Child)],
    redis: Option<&Redis>,
) -> Result<String, Error> {
    // A benchmark waits for its moment; the tests order events, never sleep.
    std::thread::sleep(Duration::from_secs(args.duration) / 2);
    match fault {
        Fault::Stall => {
            let stopped_for = args.fault_for.unwrap_or(3 * args.lifetime);
            let pid = members[0].1.id();
            signal(pid, "STOP")?;
            std::thread::sleep(Duration::from_secs(stopped_for));
            signal(pid, "CONT")?;
            Ok(format!(
                "one process stopped (SIGSTOP) for {stopped_for} s at half time"
            ))
        }
        Fault::Flush => match redis {
            Some(redis) => {
                let mut conn = redis::Client::open(redis.url())?.get_connection()?;
                redis::cmd("FLUSHALL").query::<()>(&mut conn)?;
                Ok("Redis flushed (FLUSHALL) at half time".into())
            }
            None => Ok("no Redis to flush".into()),
        },
    }
}

/// Sends `SIG<name>` to `pid` with the system's `kill`.
fn signal(pid: u32, name: &str) -> Result<(), Error> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {pid}: {status}").into())
    }
}

fn print_table(args: &Args, runs: &[Value]) {
    println!(
        "\n{} processes x {} tasks, {} s, {} s tokens ({:.1} lifetimes), token endpoint {} ms\n",
        args.processes,
        args.concurrency,
        args.duration,
        args.lifetime,
        args.duration as f64 / args.lifetime as f64,
        args.latency
    );
    println!("| | each process on its own | shared tier |");
    println!("| --- | --- | --- |");
    let cell = |mode: &str, f: &dyn Fn(&Value) -> String| {
        runs.iter()
            .find(|r| r["mode"] == mode)
            .map_or_else(|| "-".to_owned(), f)
    };
    let row = |name: &str, f: &dyn Fn(&Value) -> String| {
        println!("| {name} | {} | {} |", cell("local", f), cell("shared", f));
    };
    if args.fault.is_some() {
        row("fault", &|r| r["fault"].as_str().unwrap_or("-").to_owned());
    }
    row("API requests", &|r| r["api_requests"].to_string());
    row("errors / expired tokens at the API", &|r| {
        format!("{} / {}", r["errors"], r["expired_tokens_received"])
    });
    row("token requests", &|r| r["token_requests"].to_string());
    row("token requests per token lifetime", &|r| {
        r["token_requests_per_lifetime"].to_string()
    });
    row("token requests per process", &|r| {
        format!(
            "{:.2}",
            r["token_requests"].as_f64().unwrap_or(0.0) / args.processes as f64
        )
    });
    row("requests that waited for a token after start-up", &|r| {
        r["waits_after_startup"].to_string()
    });
    row("Redis commands (by the tiers)", &|r| {
        r.get("shared_tier")
            .map_or("0".into(), |t| t["redis_commands"].to_string())
    });
    row("Redis commands per API request", &|r| {
        r.get("shared_tier").map_or("0".into(), |t| {
            format!(
                "{:.6}",
                t["redis_commands_per_api_request"].as_f64().unwrap_or(0.0)
            )
        })
    });
    row("miss served from Redis: p50 by process / max (µs)", &|r| {
        r.get("shared_tier").map_or("-".into(), |t| {
            format!(
                "{} / {}",
                t["read_from_redis_us_p50_by_process"], t["read_from_redis_us_max"]
            )
        })
    });
    row(
        "miss that waited for the lease holder: p50 by process / max (µs)",
        &|r| {
            r.get("shared_tier").map_or("-".into(), |t| {
                format!("{} / {}", t["waited_us_p50_by_process"], t["waited_us_max"])
            })
        },
    );
    row(
        "lease holder's miss, beyond the token request: p50 by process / max (µs)",
        &|r| {
            r.get("shared_tier").map_or("-".into(), |t| {
                format!(
                    "{} / {}",
                    t["lease_holder_overhead_us_p50_by_process"], t["lease_holder_overhead_us_max"]
                )
            })
        },
    );
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Another example binary next to this one (target/release/examples/).
fn sibling(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release --features redis --example {name}`",
            path.display()
        )
        .into())
    }
}

/// The shared token endpoint and API: a `load --serve-only` process.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    token_url: String,
    api_url: String,
}

impl Server {
    fn start(load: &Path, args: &Args) -> Result<Self, Error> {
        let mut child = Command::new(load)
            .arg("--serve-only")
            .args(["--token-lifetime", &args.lifetime.to_string()])
            .args(["--token-latency", &args.latency.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (Some("SERVING"), Some(token_url), Some(api_url)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("load --serve-only said {line:?}").into());
        };
        Ok(Self {
            token_url: token_url.to_owned(),
            api_url: api_url.to_owned(),
            child,
            stdin,
            stdout,
        })
    }

    /// Stops serving; what the server saw.
    fn finish(&mut self) -> Result<Value, Error> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let mut line = String::new();
        while self.stdout.read_line(&mut line)? > 0 {
            if let Some(stats) = line.trim().strip_prefix("SERVER-STATS ") {
                return Ok(serde_json::from_str(stats)?);
            }
            line.clear();
        }
        Err("the server printed no stats".into())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` of this tool's own, on 127.0.0.1.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Result<Self, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server (apt-get install -y redis-server): {e}"))?;
        let redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.commands_processed().is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `total_commands_processed` from `INFO stats` (this query included).
    fn commands_processed(&self) -> Result<u64, Error> {
        let mut conn = redis::Client::open(self.url())?.get_connection()?;
        let info: String = redis::cmd("INFO").arg("stats").query(&mut conn)?;
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| "no total_commands_processed".into())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
