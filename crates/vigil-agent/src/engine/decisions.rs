//! Masking decisions between media: the trigger events and control requests waiting for the
//! masking stage, taken whenever the engine is not busy with one frame.

use crossbeam_channel::Receiver;
use uuid::Uuid;
use vigil_capture::Clock;
use vigil_mask::TriggerEvent;

use crate::control::ControlRequest;
use crate::masking::Masking;

/// The masking stage and what waits for it.
pub(super) struct Decisions {
    pub(super) masking: Masking,
    pub(super) triggers: Receiver<TriggerEvent>,
    pub(super) controls: Receiver<ControlRequest>,
    pub(super) clock: Clock,
    pub(super) session_id: Uuid,
}

impl Decisions {
    /// Takes the trigger events, time-driven decisions and control requests that are waiting.
    /// Trigger events first: a span must be in place before the media it covers leaves the
    /// delay line (the delay line holds ≥ 500 ms; a trigger wakes the loop at once, and waits
    /// at most for the frame being encoded).
    pub(super) fn decide(&mut self) {
        for event in self.triggers.try_iter() {
            self.masking.on_trigger(&event, self.clock.now_ns());
        }
        self.masking.tick(self.clock.now_ns());
        for request in self.controls.try_iter() {
            answer(&mut self.masking, &self.clock, self.session_id, request);
        }
    }

    /// Applies a control request and answers with the state read back from the mask timeline.
    pub(super) fn answer(&mut self, request: ControlRequest) {
        answer(&mut self.masking, &self.clock, self.session_id, request);
    }
}

fn answer(masking: &mut Masking, clock: &Clock, session_id: Uuid, request: ControlRequest) {
    let now = clock.now_ns();
    let applied = masking
        .on_control(&request.command, now)
        .map(|()| masking.state(now, Some(session_id.to_string())));
    let _ = request.reply.send(applied);
}
