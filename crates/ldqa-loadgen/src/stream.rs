//! The SSE hot loop: bytes of one response in, timings and the verdict out.
//!
//! Every network chunk is stamped once on arrival; the events it completes share that
//! moment. Nothing here allocates per event once the decoder's buffers have grown
//! (the generated text is only collected when a response file asked for it).

use ldqa_model::{Api, Failure, FailureKind, RequestRecord};
use ldqa_sse::{Decoder, StreamData};

/// What has been seen of one response so far.
pub(crate) struct StreamState<'t> {
    decoder: Decoder,
    api: Api,
    text: Option<&'t mut String>,
    /// The content timings and usage seen so far. They reach the caller's record only in
    /// [`finish`](Self::finish), so a request cut off by `--request-timeout` keeps none.
    seen: RequestRecord,
    done: bool,
    failure: Option<Failure>,
}

impl<'t> StreamState<'t> {
    pub(crate) fn new(api: Api, text: Option<&'t mut String>) -> Self {
        Self {
            decoder: Decoder::new(),
            api,
            text,
            seen: RequestRecord::new(0, 0, false),
            done: false,
            failure: None,
        }
    }

    /// `[DONE]` seen, or the response already failed: stop reading.
    pub(crate) fn is_finished(&self) -> bool {
        self.done || self.failure.is_some()
    }

    /// Records a transport failure (the first one wins).
    pub(crate) fn fail(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
    }

    /// Decodes one network chunk that arrived at `now_ns`.
    pub(crate) fn feed(&mut self, bytes: &[u8], now_ns: u64) {
        let Self {
            decoder,
            text,
            seen,
            done,
            failure,
            api,
        } = self;
        decoder.push(bytes);
        while let Some(event) = decoder.next_event() {
            if *done || failure.is_some() {
                // Anything after [DONE] or a failure is ignored, but drained.
                continue;
            }
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    *failure = Some(Failure::new(FailureKind::MalformedEvent, e.to_string()));
                    continue;
                }
            };
            match ldqa_sse::parse_event(&event) {
                Ok(StreamData::Done) => *done = true,
                Ok(StreamData::Error(e)) => {
                    let mut f = Failure::new(FailureKind::ErrorEvent, e.message.as_ref());
                    f.http_status = e.code.and_then(|c| u16::try_from(c).ok());
                    *failure = Some(f);
                }
                Ok(StreamData::Chunk(chunk)) => {
                    if let Some(u) = chunk.usage {
                        seen.usage = Some(u);
                    }
                    if !chunk.has_content() {
                        continue;
                    }
                    // Completions streams have no reasoning or tool calls; chat counts them
                    // as the first token, as upstream does.
                    if *api == Api::Completions
                        && chunk.content.as_deref().is_none_or(str::is_empty)
                    {
                        continue;
                    }
                    seen.on_content(now_ns);
                    if let Some(t) = text.as_deref_mut() {
                        t.push_str(chunk.text());
                    }
                }
                Err(e) => *failure = Some(Failure::new(FailureKind::MalformedEvent, e.to_string())),
            }
        }
    }

    /// Ends the response: moves the timings into `record` and gives the verdict.
    pub(crate) fn finish(mut self, record: &mut RequestRecord) -> Result<(), Failure> {
        record.first_token_ns = self.seen.first_token_ns;
        record.last_token_ns = self.seen.last_token_ns;
        record.content_events = self.seen.content_events;
        record.max_itl_ns = self.seen.max_itl_ns;
        record.usage = self.seen.usage.take();
        if let Some(f) = self.failure.take() {
            return Err(f);
        }
        if !self.done {
            let end = self.decoder.finish();
            let detail = if end.mid_event {
                " in the middle of an event"
            } else {
                ""
            };
            return Err(Failure::new(
                FailureKind::TruncatedStream,
                format!("stream ended before [DONE]{detail}"),
            ));
        }
        if self.seen.first_token_ns.is_none() {
            return Err(Failure::new(
                FailureKind::NoContent,
                "the stream completed without any content",
            ));
        }
        Ok(())
    }
}
