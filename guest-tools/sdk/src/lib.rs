//! What every Hearth tool shares.
//!
//! A tool implements [`Tool`] and calls [`export_tool!`]; the SDK turns that into the `hearth:tool`
//! world's exports. Containment is the host's job (a tool only ever sees the preopened directories
//! of one session's view); this crate makes tools *honest* inside that box: every path is checked
//! against the view ([`view::View`]) so agents get `invalid_path` or `permission_denied` with a
//! clear message instead of an opaque I/O error.

pub mod atomic;
pub mod dir;
pub mod error;
pub mod glob;
pub mod time;
pub mod view;
pub mod walk;

pub use error::ToolError;
pub use view::{Resolved, View};

/// Bindings generated from `wit/tool.wit`, shared by every tool crate.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "tool",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "hearth_tool_sdk::bindings",
    });
}

use bindings::hearth::tool::types as wit;

/// A tool: its description for agents and the function that runs it.
pub trait Tool {
    /// The name agents call the tool by.
    const NAME: &'static str;
    /// What the tool does, for the model deciding whether to call it.
    const DESCRIPTION: &'static str;
    /// True when the tool never changes a file (the host then grants it read-only mounts).
    const READ_ONLY: bool;
    /// The arguments, deserialized from the JSON object the host validated.
    type Args: serde::de::DeserializeOwned;

    /// JSON Schema of [`Self::Args`], in the subset the host validates.
    fn input_schema() -> serde_json::Value;

    /// Runs the tool against the session's view.
    fn run(view: &View, args: Self::Args) -> Result<serde_json::Value, ToolError>;
}

/// The `describe` export for tool `T`.
#[doc(hidden)]
pub fn describe<T: Tool>() -> wit::Metadata {
    wit::Metadata {
        name: T::NAME.to_owned(),
        description: T::DESCRIPTION.to_owned(),
        input_schema: T::input_schema().to_string(),
        read_only: T::READ_ONLY,
    }
}

/// The `invoke` export for tool `T`.
#[doc(hidden)]
pub fn invoke<T: Tool>(context: wit::CallContext, args: String) -> Result<String, wit::ToolError> {
    let view = View::from_context(&context);
    let args: T::Args = serde_json::from_str(&args)
        .map_err(|e| ToolError::InvalidInput(format!("arguments do not fit the schema: {e}")))?;
    let value = T::run(&view, args)?;
    Ok(value.to_string())
}

/// Exports a type implementing [`Tool`] as this component's `hearth:tool` world.
#[macro_export]
macro_rules! export_tool {
    ($tool:ty) => {
        struct HearthToolExports;

        impl $crate::bindings::Guest for HearthToolExports {
            fn describe() -> $crate::bindings::hearth::tool::types::Metadata {
                $crate::describe::<$tool>()
            }

            fn invoke(
                context: $crate::bindings::hearth::tool::types::CallContext,
                args: String,
            ) -> Result<String, $crate::bindings::hearth::tool::types::ToolError> {
                $crate::invoke::<$tool>(context, args)
            }
        }

        $crate::bindings::export_bindings!(HearthToolExports);
    };
}
