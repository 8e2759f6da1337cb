//! What [`BufferBody`](super::BufferBody) has recorded of a body so far, and
//! whether that is the whole body: a state machine fed one frame at a time.

use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;

/// A recording shared by the body that feeds it and the kept request that
/// replays it.
pub(super) type SharedRecording = Arc<Mutex<Recording>>;

pub(super) fn lock(recording: &Mutex<Recording>) -> MutexGuard<'_, Recording> {
    // Nothing panics while the lock is held; a poisoned recording is still sound.
    recording.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum State {
    /// The body is being sent and recorded.
    #[default]
    Recording,
    /// The body was sent to its end and everything is recorded.
    Complete,
    /// Cannot be replayed: past the cap, failed, or already replayed.
    Dropped,
}

/// The data frames (reference-counted `Bytes`, not copies) and trailers of a
/// body, as far as it was sent.
#[derive(Debug, Default)]
pub(super) struct Recording {
    state: State,
    data: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    len: usize,
    /// The most data bytes worth recording; past it, nothing is kept.
    max_bytes: usize,
    /// The body's declared length: once that much is recorded, the body is
    /// complete, whether or not its end is ever polled.
    declared: Option<u64>,
}

impl Recording {
    /// A recording of a body that is yet to be sent.
    pub(super) fn new(max_bytes: usize, declared: Option<u64>) -> Self {
        let state = if declared == Some(0) {
            State::Complete
        } else {
            State::Recording
        };
        Self {
            state,
            max_bytes,
            declared,
            ..Self::default()
        }
    }

    pub(super) fn state(&self) -> State {
        self.state
    }

    /// How many data bytes were sent so far.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Records one frame; `false` once nothing more needs to be recorded.
    pub(super) fn record(&mut self, frame: &Frame<Bytes>) -> bool {
        let open = match self.state {
            State::Recording => true,
            // Complete at its declared length, a body may still send
            // trailers (over HTTP/2).
            State::Complete => self.declared.is_some(),
            State::Dropped => false,
        };
        if !open {
            return false;
        }
        if let Some(data) = frame.data_ref() {
            self.len = self.len.saturating_add(data.len());
            // Longer than declared: no sender lets such a body through.
            if self.len > self.max_bytes || self.declared.is_some_and(|d| self.len as u64 > d) {
                self.drop_all();
                return false;
            }
            if !data.is_empty() {
                self.data.push(data.clone());
            }
            if self.declared == Some(self.len as u64) {
                self.state = State::Complete;
            }
            true
        } else if let Some(trailers) = frame.trailers_ref() {
            // Trailers are the last frame.
            self.trailers = Some(trailers.clone());
            self.finish();
            false
        } else {
            // A frame kind this version does not know: cannot be replayed.
            self.drop_all();
            false
        }
    }

    /// The body ended. Shorter than it declared, it cannot be replayed (its
    /// sender fails it anyway).
    pub(super) fn finish(&mut self) {
        if self.declared.is_some_and(|d| (self.len as u64) < d) {
            self.drop_all();
        } else if self.state == State::Recording {
            self.state = State::Complete;
        }
    }

    /// The body failed: it cannot be replayed; frees what was kept.
    pub(super) fn drop_all(&mut self) {
        self.state = State::Dropped;
        self.data = Vec::new();
        self.trailers = None;
    }

    /// The whole body, if it was recorded to its end; frees the recording.
    pub(super) fn take_complete(&mut self) -> Option<(Vec<Bytes>, Option<HeaderMap>)> {
        let complete = self.state == State::Complete;
        let data = mem::take(&mut self.data);
        let trailers = self.trailers.take();
        self.state = State::Dropped;
        complete.then_some((data, trailers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(bytes: &'static [u8]) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(bytes))
    }

    fn trailers() -> Frame<Bytes> {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "abc".parse().unwrap());
        Frame::trailers(trailers)
    }

    /// Frames written as text: `T` is the trailers, anything else data.
    fn frames(spec: &[&'static str]) -> Vec<Frame<Bytes>> {
        let frame = |f: &&'static str| match *f {
            "T" => trailers(),
            data => self::data(data.as_bytes()),
        };
        spec.iter().map(frame).collect()
    }

    #[test]
    fn records_frames_until_the_end_the_cap_or_the_declared_length() {
        use State::{Complete, Dropped, Recording as Open};
        // (cap, declared length, frames, whether the body ended after them;
        //  then the state, the data bytes kept, whether trailers were kept)
        #[rustfmt::skip]
        let cases = [
            (8, None,    &["abc"][..],      false, Open,     3, false),
            (8, None,    &["abc"],          true,  Complete, 3, false),
            (8, None,    &["abc", "T"],     false, Complete, 3, true),
            (8, None,    &["12345", "6789"], false, Dropped, 0, false),
            (8, None,    &["12345678"],     true,  Complete, 8, false),
            (0, None,    &["T"],            false, Complete, 0, true),
            (8, None,    &["", ""],         true,  Complete, 0, false),
            // Over HTTP/1.1 the end of a body with a declared length is never
            // polled: reaching the length completes it.
            (8, Some(3), &["abc"],          false, Complete, 3, false),
            (8, Some(3), &["ab", "c"],      false, Complete, 3, false),
            (8, Some(4), &["abc"],          false, Open,     3, false),
            (8, Some(0), &[],               false, Complete, 0, false),
            (8, Some(3), &["abc", ""],      false, Complete, 3, false),
            (8, Some(3), &["abc", "T"],     false, Complete, 3, true),
            // Longer or shorter than declared: no sender lets it through.
            (8, Some(3), &["abc", "d"],     false, Dropped,  0, false),
            (8, Some(2), &["abc"],          false, Dropped,  0, false),
            (8, Some(9), &["abc"],          true,  Dropped,  0, false),
            (8, Some(9), &["abc", "T"],     false, Dropped,  0, false),
        ];
        for (max_bytes, declared, spec, ended, state, kept, kept_trailers) in cases {
            let case = format!("cap {max_bytes}, declared {declared:?}, {spec:?}, ended {ended}");
            let mut recording = Recording::new(max_bytes, declared);
            for frame in &frames(spec) {
                recording.record(frame);
            }
            if ended {
                recording.finish();
            }
            assert_eq!(recording.state(), state, "{case}");
            let kept_bytes: usize = recording.data.iter().map(Bytes::len).sum();
            assert_eq!(kept_bytes, kept, "{case}");
            assert_eq!(recording.trailers.is_some(), kept_trailers, "{case}");
        }
    }

    #[test]
    fn a_recording_is_taken_once() {
        let mut recording = Recording::new(8, None);
        recording.record(&data(b"abc"));
        assert!(recording.take_complete().is_none());
        recording.finish();
        assert!(recording.take_complete().is_none(), "taken before it ended");

        let mut recording = Recording::new(8, None);
        recording.record(&data(b"abc"));
        recording.finish();
        let (data, trailers) = recording.take_complete().unwrap();
        assert_eq!((data.len(), trailers), (1, None));
        assert!(recording.take_complete().is_none());
        assert!(!recording.record(&self::data(b"d")));
    }
}
