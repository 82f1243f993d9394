//! Release manifests the tests write, shared by every test module through `support`.
#![allow(dead_code)] // each test crate uses a different part

/// A minimal valid dev release that the built-in policies pass.
pub fn dev_release(name: &str) -> String {
    format!(
        "\
apiVersion: relgate.dev/v1
kind: PromptRelease
metadata:
  name: {name}
  version: \"2\"
  service: support-bot
  environment: dev
  tier: 3
  change_type: feature
spec:
  owner: {{team: assistants, contact: dana@example.com}}
  prompt:
    registry: langfuse
    path: prompts/{name}
    digest: sha256:{}
  rollout: {{strategy: canary, steps: [10, 50, 100], bake_minutes: 30}}
  rollback: {{to_version: \"1\", max_minutes: 30, automated: true}}
  logging:
    content_capture: false
    sinks:
      - {{name: prometheus, region: eu-west-1, data_classes: [metrics], retention_days: 30}}
",
        "a".repeat(64)
    )
}
