output "project_id" {
  description = "Id of the project."
  value       = mallard_project.this.id
}

output "project_ids" {
  description = "Every project of the tenant: id by name."
  value       = data.mallard_projects.all.ids
}

output "ci_api_key" {
  description = "The CI key (mk.<id>.<secret>); `terraform output -raw ci_api_key`."
  value       = mallard_api_key.ci.key
  sensitive   = true
}

output "join_token" {
  description = "The agent's one-time join token (MALLARD_AGENT_JOIN_TOKEN)."
  value       = mallard_agent_join_token.agent.token
  sensitive   = true
}

output "join_token_status" {
  description = "active until the agent enrolls, then redeemed."
  value       = mallard_agent_join_token.agent.status
}

output "agents" {
  description = "Enrolled agents named agent_name, with status and version."
  value       = [for agent in data.mallard_agents.enrolled.agents : { id = agent.id, status = agent.status, version = agent.version }]
}
