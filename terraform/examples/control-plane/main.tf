# The hosted control plane: API, gateway (behind a load balancer), Celery worker and beat, on
# PostgreSQL and Redis you already run.

provider "kubernetes" {
  config_path = var.kubeconfig
}

provider "helm" {
  kubernetes {
    config_path = var.kubeconfig
  }
}

module "control_plane" {
  source = "../../modules/control-plane"

  namespace        = "mallard"
  database_url     = var.database_url
  redis_url        = var.redis_url
  gateway_hostname = var.gateway_hostname
}

output "api_url" {
  description = "In-cluster URL of the REST API."
  value       = module.control_plane.api_url
}

output "gateway_address" {
  description = "What agents dial: the data-plane-agent module's control_plane_address."
  value       = module.control_plane.gateway_address
}

output "bootstrap_secret_name" {
  description = "Secret with the token that POST /api/v1/bootstrap requires."
  value       = module.control_plane.bootstrap_secret_name
}
