//! A model's own chat template, measured: how many tokens it wraps around one user message,
//! and how many of them come before the message (the same in every prompt, so they hit
//! the prefix cache whatever the prompt).
//!
//! vLLM's chat endpoint renders `tokenizer_config.json`'s `chat_template` (Jinja) with
//! `add_generation_prompt`, then tokenizes the text without adding special tokens. Here
//! the template is rendered with [minijinja] around a marker, and the text before and
//! after the marker is tokenized with the folder's `tokenizer.json`: a prompt of `n`
//! content tokens becomes `n + added_tokens`. Exact whenever the message's first and last
//! tokens do not merge with the template's (Llama-3's headers end in `\n\n`, which its
//! pre-tokenizer splits from what follows).

use std::path::Path;

use ldqa_model::PromptTemplate;
use serde_json::Value;

use crate::WorkloadError;

/// Stands for the message while rendering: private-use characters no template emits.
const MARKER: &str = "\u{E000}ldqa-message\u{E001}";

/// A model's chat template (`tokenizer_config.json`'s `chat_template`), ready to render
/// whole conversations as vLLM's chat endpoint does.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The template of the model folder `dir`.
    pub fn load(dir: &Path) -> Result<Self, WorkloadError> {
        let err = |message: String| WorkloadError::ChatTemplate {
            path: dir.to_path_buf(),
            message,
        };
        let config_path = dir.join("tokenizer_config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| err(format!("reading {}: {e}", config_path.display())))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|e| err(format!("{}: {e}", config_path.display())))?;
        let source = template_source(&config)
            .ok_or_else(|| err("tokenizer_config.json has no chat_template".into()))?;
        let template = ChatTemplate {
            source: source.to_string(),
            bos_token: special_token(&config, "bos_token"),
            eos_token: special_token(&config, "eos_token"),
        };
        // Refuse at load what cannot render, not on every request.
        template
            .render(&[("user", MARKER)], true)
            .map_err(|e| err(format!("rendering it: {e:#}")))?;
        Ok(template)
    }

    /// The text of `messages` (`(role, content)`), with the generation prompt when
    /// `add_generation_prompt`: what vLLM tokenizes (without adding special tokens; the
    /// template writes them).
    pub fn render(
        &self,
        messages: &[(&str, &str)],
        add_generation_prompt: bool,
    ) -> Result<String, minijinja::Error> {
        let mut env = minijinja::Environment::new();
        env.add_function("raise_exception", |msg: String| -> Result<String, _> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        });
        env.add_template("chat", &self.source)?;
        let messages: Vec<_> = messages
            .iter()
            .map(|(role, content)| minijinja::context! { role => role, content => content })
            .collect();
        env.get_template("chat")?.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
    }
}

/// The template of the model folder `dir` (its `tokenizer_config.json` and
/// `tokenizer.json`), around one user message.
pub fn model_chat_template(dir: &Path) -> Result<PromptTemplate, WorkloadError> {
    measure(&ChatTemplate::load(dir)?, dir)
}

/// How many tokens `template` wraps around one user message, and how many come before it.
fn measure(template: &ChatTemplate, dir: &Path) -> Result<PromptTemplate, WorkloadError> {
    let err = |message: String| WorkloadError::ChatTemplate {
        path: dir.to_path_buf(),
        message,
    };
    let rendered = template
        .render(&[("user", MARKER)], true)
        .map_err(|e| err(format!("rendering it: {e:#}")))?;
    let (before, after) = rendered
        .split_once(MARKER)
        .ok_or_else(|| err("the rendered template does not contain the message".into()))?;
    let tok = crate::tokenized::load(dir)?;
    let before = tok.count_with_specials(before)? as u64;
    let after = tok.count_with_specials(after)? as u64;
    Ok(PromptTemplate {
        added_tokens: before + after,
        shared_prefix_tokens: u32::try_from(before).unwrap_or(u32::MAX),
    })
}

/// A model folder's own chat template and tokenizer (`--model DIR`).
#[derive(Debug, Clone)]
pub struct OwnTemplate {
    /// Tokens it wraps around one user message.
    pub counted: PromptTemplate,
    /// The template itself, for whole conversations.
    pub template: ChatTemplate,
    /// The folder's `tokenizer.json`.
    pub tokenizer: std::path::PathBuf,
}

/// When `model` (a `--model` value) is a folder with `tokenizer_config.json` and
/// `tokenizer.json`: its chat template, measured, and its tokenizer file. `None` for a
/// model name or a folder without them.
pub fn own_chat_template(model: &str) -> Result<Option<OwnTemplate>, WorkloadError> {
    let dir = Path::new(model);
    let tokenizer = dir.join("tokenizer.json");
    if !(dir.join("tokenizer_config.json").is_file() && tokenizer.is_file()) {
        return Ok(None);
    }
    let template = ChatTemplate::load(dir)?;
    Ok(Some(OwnTemplate {
        counted: measure(&template, dir)?,
        template,
        tokenizer,
    }))
}

/// What the completions API adds around a prompt with the tokenizer at `tokenizer`: the
/// special tokens its post-processor adds (Llama-3: `<|begin_of_text|>`, 1), as vLLM
/// tokenizes a completions prompt (with special tokens).
pub fn completions_template(tokenizer: &Path) -> Result<PromptTemplate, WorkloadError> {
    let added = crate::tokenized::load(tokenizer)?.special_tokens_added()? as u64;
    Ok(PromptTemplate {
        added_tokens: added,
        shared_prefix_tokens: 0,
    })
}

/// `chat_template`: a string, or a list of named templates (the `default` one).
fn template_source(config: &Value) -> Option<&str> {
    match config.get("chat_template")? {
        Value::String(s) => Some(s),
        Value::Array(named) => named
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str()),
        _ => None,
    }
}

/// A special token as `tokenizer_config.json` spells it: a string or `{"content": …}`.
fn special_token(config: &Value, name: &str) -> String {
    match config.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v["content"].as_str().unwrap_or_default().to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_templates_pick_the_default() {
        let config = serde_json::json!({"chat_template": [
            {"name": "tool_use", "template": "x"}, {"name": "default", "template": "y"}]});
        assert_eq!(template_source(&config), Some("y"));
        assert_eq!(template_source(&serde_json::json!({})), None);
    }

    #[test]
    fn renders_around_the_marker() {
        let t = ChatTemplate {
            source: "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] | trim }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}".into(),
            bos_token: "<s>".into(),
            eos_token: String::new(),
        };
        assert_eq!(
            t.render(&[("user", MARKER)], true).unwrap(),
            format!("<s>[user]{MARKER}[assistant]")
        );
        assert_eq!(
            t.render(&[("system", "be brief"), ("user", " hi ")], true)
                .unwrap(),
            "<s>[system]be brief[user]hi[assistant]"
        );
        assert_eq!(t.render(&[("user", "x")], false).unwrap(), "<s>[user]x");
    }
}
