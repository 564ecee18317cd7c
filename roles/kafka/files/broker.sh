#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft) for mlops.platform's tests, resolved from Maven Central's
# artifacts at a pinned version with Maven and cached outside the repository (like the offline
# cluster's binaries and roles/monitoring/files/upstream.sh):
#
#   broker.sh build       resolve org.apache.kafka:kafka_2.13 and its runtime dependencies into
#                         the cache (mvn dependency:copy-dependencies from a generated pom) and
#                         print the directory of the jars
#   broker.sh crds        the Strimzi CRDs the kafka role uses (Kafka, KafkaNodePool, KafkaTopic,
#                         KafkaUser) as a v1 List, produced by io.strimzi:api's own Crds class
#                         (resolved with Maven at STRIMZI_VERSION); prints the file's path
#   broker.sh path X      print the path of X: libs (the jar directory) | classpath (a file holding
#                         the Java class path) | crds | version
#   broker.sh env         print the settings as shell assignments
#
# The broker itself is started by the tests (kafka-storage format, then kafka.Kafka) on 127.0.0.1.
# Nothing fetched here is committed. Logs go to stderr; stdout carries the path.
set -euo pipefail

# 4.1.1: a Kafka 4 release (KRaft only, Java 17 for the broker) whose artifacts the registry
# serves in full; override with KAFKA_VERSION to try another 4.x.
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
export LOG_TAG=broker  # the shared functions tag their log lines with it
# shellcheck source-path=SCRIPTDIR source=../../../scripts/lib/upstream.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/upstream.sh"
KAFKA_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_DIR/libs"
CLASSPATH_FILE="$KAFKA_DIR/classpath"
# Strimzi 0.48.0: its io.strimzi:api artifact (the operator's model classes and its Crds factory).
STRIMZI_VERSION="${STRIMZI_VERSION:-0.48.0}"
CRDS_FILE="$CACHE_DIR/upstream/strimzi-api-$STRIMZI_VERSION-crds.json"

cmd_build() {
  [[ -s $CLASSPATH_FILE ]] && { echo "$LIBS"; return; }
  command -v mvn >/dev/null || die "mvn is not on PATH: install Maven (apt-get install maven)"
  command -v java >/dev/null || die "java is not on PATH: Kafka $KAFKA_VERSION's broker needs Java 17 or newer"
  build_lock kafka-build
  if [[ ! -s $CLASSPATH_FILE ]]; then
    local start=$SECONDS work="$KAFKA_DIR.work"
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies"
    rm -rf "$work" "$LIBS.tmp"; mkdir -p "$work"
    # kafka_2.13 leaves the logging backend to the distribution (its log4j2 is optional): the
    # pom adds log4j-core and the slf4j 1.7 binding (kafka-clients uses slf4j-api 1.7).
    cat >"$work/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mlops.platform</groupId>
  <artifactId>kafka-broker-deps</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
    (cd "$work" && mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$CACHE_DIR/m2" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >&2) || die "mvn could not resolve kafka_2.13:$KAFKA_VERSION"
    [[ -s "$LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar is missing after the resolution"
    rm -rf "$LIBS"; mv "$LIBS.tmp" "$LIBS"; rm -rf "$work"
    # The class path with absolute paths, one file the tests read (no wildcard expansion to trust).
    find "$LIBS" -name '*.jar' | sort | paste -sd: >"$CLASSPATH_FILE"
    log "Kafka $KAFKA_VERSION ready in $LIBS ($(find "$LIBS" -name '*.jar' | wc -l) jars, $((SECONDS - start)) s)"
  fi
  build_unlock
  echo "$LIBS"
}

# The CRDs as io.strimzi:api's Crds class builds them: the real group, names, versions, scope
# and status subresource of each kind. Its schema accepts any spec (x-kubernetes-preserve-unknown-fields):
# the API server checks kind, version and namespace of what the role renders, not its fields. The
# full schemas are generated at Strimzi's build time and published only in its release archives
# and Helm chart, which cannot be reached here.
cmd_crds() {
  [[ -s $CRDS_FILE ]] && { echo "$CRDS_FILE"; return; }
  command -v mvn >/dev/null || die "mvn is not on PATH: install Maven (apt-get install maven)"
  mkdir -p "$CACHE_DIR/upstream"
  build_lock kafka-build
  if [[ ! -s $CRDS_FILE ]]; then
    local work="$CACHE_DIR/work/strimzi-api-$STRIMZI_VERSION" start=$SECONDS
    log "resolving io.strimzi:api:$STRIMZI_VERSION"
    rm -rf "$work"; mkdir -p "$work"
    cat >"$work/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mlops.platform</groupId>
  <artifactId>strimzi-crds</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$STRIMZI_VERSION</version></dependency>
  </dependencies>
</project>
POM
    (cd "$work" && mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$CACHE_DIR/m2" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$work/libs" >&2) || die "mvn could not resolve io.strimzi:api:$STRIMZI_VERSION"
    cat >"$work/StrimziCrds.java" <<'JAVA'
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.strimzi.api.kafka.Crds;
import java.util.List;

/** Prints the CRDs of the kinds the kafka role renders, as a v1 List with the collection's labels. */
public class StrimziCrds {
  public static void main(String[] args) throws Exception {
    ObjectMapper mapper = new ObjectMapper();
    ObjectNode list = mapper.createObjectNode().put("apiVersion", "v1").put("kind", "List");
    list.putObject("metadata").putObject("annotations").put("mlops.platform/upstream", "io.strimzi:api:" + args[0]);
    var items = list.putArray("items");
    for (Object crd : List.of(Crds.kafka(), Crds.kafkaNodePool(), Crds.kafkaTopic(), Crds.kafkaUser())) {
      ObjectNode node = mapper.valueToTree(crd);
      ((ObjectNode) node.get("metadata")).putObject("labels")
          .put("app.kubernetes.io/managed-by", "mlops.platform").put("app.kubernetes.io/part-of", "mlops-platform")
          .put("app.kubernetes.io/name", "strimzi").put("app.kubernetes.io/component", "kafka");
      items.add(node);
    }
    System.out.println(mapper.writeValueAsString(list));
  }
}
JAVA
    java -cp "$(find "$work/libs" -name '*.jar' | sort | paste -sd:)" "$work/StrimziCrds.java" "$STRIMZI_VERSION" \
      >"$CRDS_FILE.tmp" 2>"$work/java.log" || { cat "$work/java.log" >&2; die "the Crds class of io.strimzi:api failed"; }
    mv "$CRDS_FILE.tmp" "$CRDS_FILE"; rm -rf "$work"
    log "Strimzi $STRIMZI_VERSION CRDs in $CRDS_FILE ($((SECONDS - start)) s)"
  fi
  build_unlock
  echo "$CRDS_FILE"
}

case "${1:-}" in
  build) cmd_build ;;
  crds) cmd_crds ;;
  path)
    case "${2:-}" in
      libs) echo "$LIBS" ;;
      classpath) echo "$CLASSPATH_FILE" ;;
      crds) echo "$CRDS_FILE" ;;
      version) echo "$KAFKA_VERSION" ;;
      *) die "path: libs, classpath, crds or version" ;;
    esac ;;
  env) printf 'KAFKA_VERSION=%s\nSTRIMZI_VERSION=%s\nMLOPS_CACHE_DIR=%s\n' "$KAFKA_VERSION" "$STRIMZI_VERSION" "$CACHE_DIR" ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
