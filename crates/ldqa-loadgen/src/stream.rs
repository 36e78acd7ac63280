//! The SSE hot loop: bytes of one response in, timings and the verdict out.
//!
//! Every network chunk is stamped once on arrival; the events it completes share that
//! moment. Nothing here allocates per event once the decoder's buffers have grown
//! (the generated text is only collected when a response file asked for it).

use ldqa_model::{Api, Failure, FailureKind, RequestRecord, Usage};
use ldqa_sse::{Decoder, StreamData};

/// What has been seen of one response so far.
pub(crate) struct StreamState<'t> {
    decoder: Decoder,
    api: Api,
    text: Option<&'t mut String>,
    first_token_ns: Option<u64>,
    last_token_ns: Option<u64>,
    content_events: u32,
    max_itl_ns: Option<u64>,
    usage: Option<Usage>,
    done: bool,
    failure: Option<Failure>,
}

impl<'t> StreamState<'t> {
    pub(crate) fn new(api: Api, text: Option<&'t mut String>) -> Self {
        Self {
            decoder: Decoder::new(),
            api,
            text,
            first_token_ns: None,
            last_token_ns: None,
            content_events: 0,
            max_itl_ns: None,
            usage: None,
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
            first_token_ns,
            last_token_ns,
            content_events,
            max_itl_ns,
            usage,
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
                        *usage = Some(u);
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
                    if let Some(prev) = *last_token_ns {
                        let gap = now_ns.saturating_sub(prev);
                        *max_itl_ns = Some(max_itl_ns.map_or(gap, |m| m.max(gap)));
                    }
                    first_token_ns.get_or_insert(now_ns);
                    *last_token_ns = Some(now_ns);
                    *content_events += 1;
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
        record.first_token_ns = self.first_token_ns;
        record.last_token_ns = self.last_token_ns;
        record.content_events = self.content_events;
        record.max_itl_ns = self.max_itl_ns;
        record.usage = self.usage;
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
        if self.first_token_ns.is_none() {
            return Err(Failure::new(
                FailureKind::NoContent,
                "the stream completed without any content",
            ));
        }
        Ok(())
    }
}
