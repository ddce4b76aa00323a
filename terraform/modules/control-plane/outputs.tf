output "namespace" {
  description = "Namespace of the control plane."
  value       = helm_release.control_plane.namespace
}

output "release_name" {
  description = "Name of the Helm release."
  value       = helm_release.control_plane.name
}

output "api_url" {
  description = "In-cluster URL of the REST API (MALLARD_API_URL for clients inside the cluster)."
  value       = "http://${local.fullname}-api.${helm_release.control_plane.namespace}.svc:8700"
}

output "gateway_service" {
  description = "Name of the gateway Service (agent link on 8701, enrollment on 8702)."
  value       = "${local.fullname}-gateway"
}

output "gateway_address" {
  description = "HOST:PORT agents dial (the data-plane-agent module's control_plane_address), when gateway_hostname is set."
  value       = var.gateway_hostname == null ? null : "${var.gateway_hostname}:8701"
}

output "bootstrap_secret_name" {
  description = "Secret holding the token POST /api/v1/bootstrap requires (key bootstrap-token)."
  value       = local.has_bootstrap_token ? local.secret_name : "${local.fullname}-bootstrap"
}
