//! `vigil-agent native-host`: the browser extension's native-messaging host. The browser starts
//! it and speaks the native messaging protocol on its standard input and output (each message a
//! 4-byte native-endian length, then UTF-8 JSON). Every message is relayed to the user's running
//! agent over the local control API; the answer (masked or not) goes back to the extension.
//! When the browser closes the input, the host tells the agent the extension left on purpose.

use std::io::{Read, Write};

use crate::control::{ControlClient, ControlCommand, ControlEndpoint, ExtensionMessage};

/// Browsers cap messages to the host at 4 GB, but ours are a few hundred bytes: anything larger
/// is not from the extension.
const MAX_MESSAGE: usize = 64 * 1024;

/// Why the host stopped.
#[derive(Debug, thiserror::Error)]
pub enum NativeHostError {
    /// Reading from or writing to the browser failed.
    #[error("native messaging pipe")]
    Pipe(#[from] std::io::Error),
    /// The browser sent a message longer than any the extension sends.
    #[error("message of {0} bytes from the browser refused")]
    Oversized(usize),
}

/// Reads one message; `None` at the end of the input (the browser disconnected).
pub fn read_message(input: &mut impl Read) -> Result<Option<Vec<u8>>, NativeHostError> {
    let mut header = [0u8; 4];
    match input.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_ne_bytes(header) as usize;
    if length > MAX_MESSAGE {
        return Err(NativeHostError::Oversized(length));
    }
    let mut body = vec![0u8; length];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Writes one message.
pub fn write_message(output: &mut impl Write, json: &[u8]) -> Result<(), NativeHostError> {
    output.write_all(&(json.len() as u32).to_ne_bytes())?;
    output.write_all(json)?;
    output.flush()?;
    Ok(())
}

/// The most messages relayed in one request.
const MAX_BATCH: usize = 50;

/// Runs the host until the browser disconnects. Messages are read on a thread of their own;
/// those that arrived while the previous request was out go to the agent together, in order,
/// in one request (a page change sends several at once: one round trip each put the last
/// tens of milliseconds behind), and each gets its answer.
pub fn run_native_host() -> Result<(), NativeHostError> {
    let app = browser_name();
    let (arrived, incoming) = std::sync::mpsc::channel::<Result<Vec<u8>, NativeHostError>>();
    std::thread::Builder::new()
        .name("native-host-reader".into())
        .spawn(move || {
            let mut input = std::io::stdin().lock();
            loop {
                let read = read_message(&mut input).transpose();
                let last = !matches!(read, Some(Ok(_)));
                if let Some(read) = read {
                    if arrived.send(read).is_err() {
                        return;
                    }
                }
                if last {
                    return;
                }
            }
        })?;
    let mut output = std::io::stdout().lock();
    let mut client: Option<ControlClient> = None;
    let mut failure = None;
    while let Ok(first) = incoming.recv() {
        let mut bodies = vec![first];
        while bodies.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(more) => bodies.push(more),
                Err(_) => break,
            }
        }
        let mut messages = Vec::new();
        for body in bodies {
            match body {
                Ok(body) => match serde_json::from_slice::<ExtensionMessage>(&body) {
                    Ok(message) => messages.push(message),
                    // Stderr lands in the browser's log; the message itself is not repeated.
                    Err(e) => eprintln!("vigil native host: unreadable message ignored: {e}"),
                },
                Err(e) => failure = Some(e),
            }
        }
        if !messages.is_empty() {
            let count = messages.len();
            let answer = relay(&mut client, &app, messages).to_string();
            for _ in 0..count {
                write_message(&mut output, answer.as_bytes())?;
            }
        }
        if failure.is_some() {
            break;
        }
    }
    relay(&mut client, &app, vec![ExtensionMessage::Bye]);
    failure.map_or(Ok(()), Err)
}

/// Sends messages to the agent, in order, in one request (discovering it again after a
/// failure: it may have restarted); returns what to tell the extension.
fn relay(
    client: &mut Option<ControlClient>,
    app: &Option<String>,
    messages: Vec<ExtensionMessage>,
) -> serde_json::Value {
    let command = match <[ExtensionMessage; 1]>::try_from(messages) {
        Ok([message]) => ControlCommand::Extension {
            app: app.clone(),
            message: Box::new(message),
        },
        Err(messages) => ControlCommand::Extensions {
            app: app.clone(),
            messages,
        },
    };
    for _ in 0..2 {
        if client.is_none() {
            *client = ControlEndpoint::folder()
                .ok()
                .and_then(|folder| ControlClient::discover(&folder).ok());
        }
        let Some(agent) = client.as_ref() else { break };
        match agent.send(&command) {
            Ok(state) => {
                return serde_json::json!({
                    "type": "state",
                    "recording": state.recording,
                    "masked": !state.masked.is_empty(),
                })
            }
            Err(e) => {
                eprintln!("vigil native host: agent unreachable: {e}");
                *client = None;
            }
        }
    }
    serde_json::json!({ "type": "state", "recording": false, "masked": false })
}

/// The browser that started the host (its parent process), for rules and the manifest.
#[cfg(target_os = "linux")]
fn browser_name() -> Option<String> {
    let parent = std::os::unix::process::parent_id();
    let comm = std::fs::read_to_string(format!("/proc/{parent}/comm")).ok()?;
    Some(comm.trim().to_string()).filter(|c| !c.is_empty())
}

/// The browser that started the host: not looked up on this OS.
#[cfg(not(target_os = "linux"))]
fn browser_name() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut wire = Vec::new();
        write_message(&mut wire, br#"{"type":"heartbeat"}"#).unwrap();
        write_message(&mut wire, b"{}").unwrap();
        let mut reader = wire.as_slice();
        assert_eq!(
            read_message(&mut reader).unwrap().unwrap(),
            br#"{"type":"heartbeat"}"#
        );
        assert_eq!(read_message(&mut reader).unwrap().unwrap(), b"{}");
        assert!(read_message(&mut reader).unwrap().is_none(), "end of input");
        let huge = (10u32 * 1024 * 1024).to_ne_bytes();
        assert!(matches!(
            read_message(&mut huge.as_slice()),
            Err(NativeHostError::Oversized(_))
        ));
    }
}
