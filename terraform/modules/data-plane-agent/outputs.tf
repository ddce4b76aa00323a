output "join_token_id" {
  description = "Id of the join token the agent enrolled with (mjt.<id>.<secret>)."
  value       = mallard_agent_join_token.this.id
}

output "agent_id" {
  description = "Id of the enrolled agent; known after the first refresh that follows enrollment."
  value       = mallard_agent_join_token.this.agent_id
}

output "namespace" {
  description = "Namespace the agent runs in."
  value       = helm_release.agent.namespace
}

output "release_name" {
  description = "Name of the Helm release."
  value       = helm_release.agent.name
}

output "data_plane_url" {
  description = "In-cluster URL of the agent's data-plane REST API."
  value       = "http://${local.fullname}.${helm_release.agent.namespace}.svc:8710"
}

output "bucket_name" {
  description = "S3 bucket of the data plane's object store (null without create_bucket)."
  value       = var.create_bucket ? aws_s3_bucket.data_plane[0].bucket : null
}

output "bucket_arn" {
  description = "ARN of that bucket (null without create_bucket)."
  value       = var.create_bucket ? aws_s3_bucket.data_plane[0].arn : null
}

output "iam_policy_arn" {
  description = "ARN of the least-privilege policy for the agent's objects (null without create_bucket)."
  value       = var.create_bucket ? aws_iam_policy.data_plane[0].arn : null
}
