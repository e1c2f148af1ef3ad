//! Background processes: start one with [`Client::exec_background`], then follow it.

use hearth_wire::exec::ExecRequest;
use hearth_wire::processes::{
    OutputQuery, ProcessInfo, ProcessList, ProcessOutput, SignalName, SignalOutcome, SignalRequest,
    StdinRequest,
};
use reqwest::Method;

use crate::{Client, Error, answer};

impl Client {
    /// `POST /v1/sessions/{id}/exec` with `background`: answers at once with the started
    /// process.
    pub async fn exec_background(
        &self,
        session: &str,
        request: &ExecRequest,
    ) -> Result<ProcessInfo, Error> {
        let request = ExecRequest {
            background: true,
            ..request.clone()
        };
        self.post(&format!("/v1/sessions/{session}/exec"), &request)
            .await
    }

    /// `GET /v1/sessions/{id}/processes`.
    pub async fn processes(&self, session: &str) -> Result<ProcessList, Error> {
        self.get(&format!("/v1/sessions/{session}/processes")).await
    }

    /// `GET /v1/sessions/{id}/processes/{process}`, waiting up to `wait_s` for its end.
    pub async fn process(
        &self,
        session: &str,
        process: &str,
        wait_s: Option<f64>,
    ) -> Result<ProcessInfo, Error> {
        let path = format!("/v1/sessions/{session}/processes/{process}");
        let query: Vec<(&str, String)> = wait_s
            .map(|s| ("wait_s", s.to_string()))
            .into_iter()
            .collect();
        answer(
            self.request(Method::GET, &path)
                .query(&query)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /v1/sessions/{id}/processes/{process}/output`.
    pub async fn process_output(
        &self,
        session: &str,
        process: &str,
        query: &OutputQuery,
    ) -> Result<ProcessOutput, Error> {
        let path = format!("/v1/sessions/{session}/processes/{process}/output");
        answer(self.request(Method::GET, &path).query(query).send().await?).await
    }

    /// `POST /v1/sessions/{id}/processes/{process}/stdin`.
    pub async fn write_stdin(
        &self,
        session: &str,
        process: &str,
        data: &str,
        close: bool,
    ) -> Result<ProcessInfo, Error> {
        let request = StdinRequest {
            data: data.to_owned(),
            close,
        };
        self.post(
            &format!("/v1/sessions/{session}/processes/{process}/stdin"),
            &request,
        )
        .await
    }

    /// `POST /v1/sessions/{id}/processes/{process}/signal`.
    pub async fn signal_process(
        &self,
        session: &str,
        process: &str,
        signal: SignalName,
    ) -> Result<SignalOutcome, Error> {
        self.post(
            &format!("/v1/sessions/{session}/processes/{process}/signal"),
            &SignalRequest { signal },
        )
        .await
    }

    /// `DELETE /v1/sessions/{id}/processes/{process}`: kills it (if it runs) and forgets it.
    pub async fn kill_process(&self, session: &str, process: &str) -> Result<ProcessInfo, Error> {
        let path = format!("/v1/sessions/{session}/processes/{process}");
        answer(self.request(Method::DELETE, &path).send().await?).await
    }

    /// The URL at which a server a program of `session` runs on `port` is reached (send the
    /// token with it).
    pub fn port_url(&self, session: &str, port: u16, path: &str) -> String {
        format!(
            "{}/v1/sessions/{session}/ports/{port}/{}",
            self.base,
            path.trim_start_matches('/')
        )
    }
}
