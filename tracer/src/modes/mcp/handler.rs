//! The MCP server's face: its description and capabilities, the prompt
//! `diagnose_network_degradation`, and the runbook as a resource. The tools are in
//! [`super::tools`].

use rmcp::{
    model::{
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        ListPromptsResult, ListResourcesResult, PaginatedRequestParams, Prompt, PromptArgument,
        PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
        Resource, ResourceContents, Role, ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    tool_handler, ErrorData, RoleServer, ServerHandler,
};

use super::{guide, tools::TracerMcp};

const INSTRUCTIONS: &str = "Live eBPF network tracer for this Kubernetes node: it answers \
    runbook D7 (network performance degradation) with which layer loses the packets. Start with \
    the prompt diagnose_network_degradation or live_network_verdict. Every tool is read-only.";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TracerMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("tracer", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut pod = PromptArgument::new("pod");
        pod.description = Some("Only this pod (NAMESPACE/NAME), optional".to_owned());
        pod.required = Some(false);
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            guide::PROMPT,
            Some("Walk runbook D7 (network performance degradation) with the tracer's live tools"),
            Some(vec![pod]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != guide::PROMPT {
            return Err(ErrorData::invalid_params(
                format!(
                    "no prompt named {:?}; the prompt is {}",
                    request.name,
                    guide::PROMPT
                ),
                None,
            ));
        }
        let pod = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("pod"))
            .and_then(|p| p.as_str())
            .filter(|p| !p.trim().is_empty());
        let text = guide::prompt_text(&self.node.identity, pod);
        Ok(GetPromptResponse::Complete(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description("Runbook D7 with the tracer's live tools"),
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            guide::RUNBOOK_URI,
            "D7-network-performance-degradation",
        )
        .with_title("Runbook D7 — Network Performance Degradation")
        .with_description("The runbook the tools answer, with its Output Format")
        .with_mime_type("text/markdown")]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != guide::RUNBOOK_URI {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no resource {}; the runbook is {}",
                    request.uri,
                    guide::RUNBOOK_URI
                ),
                None,
            ));
        }
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(guide::RUNBOOK, guide::RUNBOOK_URI)
                .with_mime_type("text/markdown")],
        )))
    }
}
