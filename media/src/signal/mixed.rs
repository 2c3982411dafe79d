//! Alternating sections of speech and music with short crossfades.

use super::music::Music;
use super::speech::Speech;

pub(super) struct Mixed {
    pub(super) speech: Speech,
    pub(super) music: Music,
    /// Section length in frames.
    pub(super) section: u64,
    /// Crossfade length in frames.
    pub(super) fade: u64,
    pub(super) pos: u64,
}

impl Mixed {
    pub(super) fn next_frame(&mut self, frame: &mut [f32]) {
        let index = self.pos / self.section;
        let within = self.pos % self.section;
        self.pos += 1;
        // Fade the outgoing section out over the last `fade` frames, the next one in.
        let (speech_gain, music_gain) = {
            let current_is_speech = index.is_multiple_of(2);
            let into_fade = (within + self.fade).saturating_sub(self.section);
            let x = into_fade as f32 / self.fade as f32;
            let (cur, next) = (1.0 - x, x);
            if current_is_speech {
                (cur, next)
            } else {
                (next, cur)
            }
        };
        if speech_gain > 0.0 {
            self.speech.next_frame(frame, speech_gain);
        }
        if music_gain > 0.0 {
            self.music.next_frame(frame, music_gain);
        }
    }
}
