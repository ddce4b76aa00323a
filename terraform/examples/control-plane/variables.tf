variable "kubeconfig" {
  type        = string
  description = "Kubeconfig of the cluster that hosts the control plane."
  default     = "~/.kube/config"
}

variable "database_url" {
  type        = string
  description = "PostgreSQL URL, e.g. postgresql+psycopg://mallard:pw@db.internal:5432/mallard."
  sensitive   = true
}

variable "redis_url" {
  type        = string
  description = "Redis URL of the scheduler's broker, e.g. redis://redis.internal:6379/0."
  sensitive   = true
}

variable "gateway_hostname" {
  type        = string
  description = "Public name agents dial (point it at the gateway's load balancer)."
  default     = "gateway.mallard.example.com"
}
