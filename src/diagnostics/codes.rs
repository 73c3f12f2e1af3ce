//! Stable diagnostic codes. Each is documented in `docs/errors.md`; a test
//! keeps that page and this table in step.

macro_rules! codes {
    ($($variant:ident = $code:literal, $summary:literal;)*) => {
        /// A stable identifier for a kind of problem (`CC0102`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = $summary] $variant,)*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed (`CC0102`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// One line saying what the code means.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    // 00xx: the command line
    Usage = "CC0001", "the command line asks for something the command does not do";
    NotRendered = "CC0002", "the object or field `explain` asks about is not in the environment's render";
    // 01xx: reading files
    FileMissing = "CC0101", "a required input file is missing";
    FileUnreadable = "CC0102", "an input file cannot be read (I/O error, not UTF-8, too large, outside the repository)";
    YamlSyntax = "CC0103", "the file is not valid YAML";
    DuplicateKey = "CC0104", "a mapping has the same key twice";
    YamlLimit = "CC0105", "the YAML exceeds a safety limit (alias expansion, nesting depth)";
    YamlUnsupported = "CC0106", "the YAML uses a construct that has no JSON equivalent (complex keys, several documents, unknown tags)";
    UnknownRevision = "CC0107", "a Git revision cannot be read: not in the repository's history, or no Git repository";
    DirUnreadable = "CC0108", "a directory the command needs (--repo, --lib, -J) cannot be opened, or holds no control-center repository";
    // 02xx: schema
    SchemaViolation = "CC0201", "a value does not match the schema of its file";
    UnknownField = "CC0202", "a field is not part of the schema (often a typo)";
    InvalidEnvName = "CC0203", "an environment name is not a lowercase DNS label";
    RepoSchemaInvalid = "CC0204", "the repository's own schema extension or Terraform-outputs contract is not valid";
    // 03xx: resolution
    UnknownEnv = "CC0301", "the requested environment is not in controlcenter.yaml";
    EnvFileMissing = "CC0302", "env-<env>.yaml is not present (environment branches carry only their own)";
    MissingGitRev = "CC0303", "an enabled service has no git_rev";
    MissingTag = "CC0304", "tags.yaml has no image for the service's git_rev";
    MutableImage = "CC0305", "an image tagged `latest` (or untagged) in a protected environment";
    InvalidName = "CC0306", "a service name cannot be turned into a valid Kubernetes name";
    NameCollision = "CC0307", "two services map to the same Kubernetes name";
    ParamClash = "CC0308", "two inputs define the same parameter";
    SecretNotSealed = "CC0309", "a secrets.yaml value is not a SealedSecret ciphertext";
    UnknownService = "CC0310", "a selected service (`--service`) is not an enabled service of the environment";
    OutputContract = "CC0311", "env-<env>.yaml does not provide what schemas/terraform-outputs.schema.json declares (a missing output, a wrong type or format)";
    UndeclaredOutput = "CC0312", "a template reads a Terraform output the contract does not declare or the env file does not have";
    // 04xx: Jsonnet
    JsonnetError = "CC0401", "a Jsonnet template failed to evaluate";
    ImportDenied = "CC0402", "a Jsonnet import reaches outside the repository and the library";
    JsonnetLimit = "CC0403", "Jsonnet evaluation exceeded the stack depth or the time limit";
    VendorMismatch = "CC0404", "vendor/ does not hold what jsonnetfile.lock.json locks, or the lock misses a library jsonnetfile.json asks for";
    // 05xx: post-processing
    InvalidResource = "CC0501", "an emitted value is not a Kubernetes object (apiVersion, kind, metadata.name)";
    DuplicateResource = "CC0502", "two emitted objects have the same group, kind, namespace and name";
    ReservedLabel = "CC0503", "an object sets a label Argo CD owns (app.kubernetes.io/instance)";
    EmptyRender = "CC0504", "the environment renders no resources";
    PlainSecret = "CC0505", "a plain Secret would be emitted (use a SealedSecret or ExternalSecret)";
    InvalidObjectName = "CC0506", "an emitted object's name, namespace, kind or apiVersion is not valid for Kubernetes";
    // 06xx: output
    OutputFailed = "CC0601", "the output could not be written";
    OutputCollision = "CC0602", "two resources would be written to the same file";
    HydrateRefused = "CC0603", "hydrated manifests cannot be committed to the target branch";
    UncommittedChanges = "CC0604", "the work tree has uncommitted changes, so no dry commit describes it";
    // 07xx: tags.yaml write-back
    ImmutableRevision = "CC0701", "a revision already points to another image (revisions are immutable)";
    InvalidImage = "CC0702", "not an image reference (registry/repository:tag or @sha256:digest)";
    // 08xx: policies
    PolicyViolation = "CC0801", "a rendered manifest breaks a policy";
    PolicyInvalid = "CC0802", "a repository policy file is not valid";
    // 09xx: limits of the whole command
    MemoryLimit = "CC0901", "the command used more memory than --max-memory allows";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn codes_are_unique_and_documented() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md"))
            .expect("docs/errors.md exists");
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{} used twice", code.as_str());
            assert!(
                doc.contains(&format!("## {}", code.as_str())),
                "docs/errors.md does not document {}",
                code.as_str()
            );
        }
    }
}
