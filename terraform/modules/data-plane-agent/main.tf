# One data-plane agent in a Kubernetes cluster of the customer's VPC: a join token minted by the
# Mallard provider, handed over in a Secret, the mallard-agent chart, and optionally an S3 bucket
# for the object store with a policy that allows only what the agent does there.

locals {
  chart       = coalesce(var.chart, "${path.module}/../../../helm/mallard-agent")
  secret_name = "${var.name}-mallard-join"
  # The chart names its objects <release>-mallard-agent unless the release name already says so.
  fullname    = strcontains(var.name, "mallard-agent") ? var.name : "${var.name}-mallard-agent"
  bucket_name = var.create_bucket ? aws_s3_bucket.data_plane[0].bucket : ""

  object_store = {
    bucket = local.bucket_name
    prefix = var.create_bucket ? var.bucket_prefix_path : ""
    region = var.create_bucket ? data.aws_region.current[0].name : ""
  }

  chart_values = {
    image = {
      repository = var.image_repository
      tag        = var.image_tag
    }
    controlPlaneAddress = var.control_plane_address
    enrollAddress       = var.enroll_address
    tlsServerName       = var.tls_server_name
    joinToken = {
      secretName = local.secret_name
      secretKey  = "join-token"
    }
    controlPlaneCa = {
      secretName = var.control_plane_ca_pem == null ? "" : local.secret_name
      secretKey  = "ca.crt"
    }
    objectStore = local.object_store
    persistence = {
      storageClass = var.storage_class
    }
    serviceAccount = {
      annotations = var.service_account_annotations
    }
    networkPolicy = {
      gatewayCidrs = var.gateway_cidrs
      stores       = var.stores
    }
  }
}

resource "mallard_agent_join_token" "this" {
  name                    = var.name
  ttl                     = var.join_token_ttl
  revoke_agent_on_destroy = var.revoke_agent_on_destroy
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of" = "mallard"
    }
  }
}

# The agent reads the token once, at its first start; the CA lets it check the gateway.
resource "kubernetes_secret_v1" "join" {
  metadata {
    name      = local.secret_name
    namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace
    labels = {
      "app.kubernetes.io/name"    = "mallard-agent"
      "app.kubernetes.io/part-of" = "mallard"
    }
  }

  data = {
    for key, value in {
      "join-token" = mallard_agent_join_token.this.token
      "ca.crt"     = var.control_plane_ca_pem
    } : key => value if value != null
  }
}

resource "helm_release" "agent" {
  name      = var.name
  namespace = kubernetes_secret_v1.join.metadata[0].namespace
  chart     = local.chart
  version   = var.chart_version

  # Helm returns once the agent has enrolled and answers GET /v1/ready.
  wait    = true
  timeout = var.helm_timeout

  values = [
    yamlencode(local.chart_values),
    yamlencode(var.helm_values),
  ]
}

# ---- optional object store -----------------------------------------------------------------

data "aws_region" "current" {
  count = var.create_bucket ? 1 : 0
}

resource "aws_s3_bucket" "data_plane" {
  count = var.create_bucket ? 1 : 0

  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "mallard-${var.name}-" : null
  force_destroy = var.bucket_force_destroy

  tags = {
    "mallard/agent" = var.name
  }
}

resource "aws_s3_bucket_public_access_block" "data_plane" {
  count = var.create_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.data_plane[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data_plane" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.data_plane[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data_plane" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.data_plane[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "data_plane" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.data_plane[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

data "aws_iam_policy_document" "tls_only" {
  count = var.create_bucket ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.data_plane[0].arn, "${aws_s3_bucket.data_plane[0].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data_plane" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.data_plane[0].id
  policy = data.aws_iam_policy_document.tls_only[0].json

  depends_on = [aws_s3_bucket_public_access_block.data_plane]
}

# Least privilege: list the agent's prefix, read, write and delete objects under it; nothing else
# (no bucket configuration, ACLs, policies or other prefixes).
data "aws_iam_policy_document" "data_plane" {
  count = var.create_bucket ? 1 : 0

  statement {
    sid       = "ListAgentPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.data_plane[0].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.bucket_prefix_path}/*", var.bucket_prefix_path]
    }
  }

  statement {
    sid = "ReadWriteAgentObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.data_plane[0].arn}/${var.bucket_prefix_path}/*"]
  }
}

resource "aws_iam_policy" "data_plane" {
  count = var.create_bucket ? 1 : 0

  name_prefix = "mallard-${var.name}-object-store-"
  description = "Mallard data-plane agent ${var.name}: objects under s3://${local.bucket_name}/${var.bucket_prefix_path}/ only."
  policy      = data.aws_iam_policy_document.data_plane[0].json
}

resource "aws_iam_role_policy_attachment" "data_plane" {
  count = var.create_bucket && var.iam_role_name != null ? 1 : 0

  role       = var.iam_role_name
  policy_arn = aws_iam_policy.data_plane[0].arn
}
