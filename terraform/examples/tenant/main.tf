# A tenant's Mallard objects from Terraform: a project, an API key for CI, and a join token for a
# data-plane agent. The API key comes from MALLARD_API_KEY (an admin key: join tokens need one).

provider "mallard" {
  api_url = var.api_url
}

resource "mallard_project" "this" {
  name        = var.project_name
  description = var.project_description
}

resource "mallard_api_key" "ci" {
  name            = var.ci_key_name
  expires_in_days = var.ci_key_expires_in_days
}

resource "mallard_agent_join_token" "agent" {
  name                    = var.agent_name
  ttl                     = var.join_token_ttl
  revoke_agent_on_destroy = true
}

data "mallard_projects" "all" {
  depends_on = [mallard_project.this]
}

data "mallard_agents" "enrolled" {
  name       = var.agent_name
  depends_on = [mallard_agent_join_token.agent]
}
