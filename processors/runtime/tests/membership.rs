//! The membership watchdog's two halves against a real broker: the broker's member list as the
//! watchdog reads it (listed while the consumer is in the group, absent once it left), and a
//! replaced consumer that joins again and reads what is produced next.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use troupe_runtime::config::ProcessorConfig;
use troupe_runtime::membership::{GroupObserver, Membership, Seen};
use troupe_testkit::{stack, unique, wait_until};

async fn topic() -> String {
    let name = unique("membership");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    name
}

/// Produces `value` to `topic` until the broker acknowledges it (the topic's leader may take a
/// moment to be elected).
async fn produce(topic: &str, value: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<str, str>::to(topic).payload(value),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
}

/// Receives from the membership's current consumer until a message with `value` arrives.
async fn receive(membership: &Membership, value: &str) {
    let consumer = membership.current();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let received = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("no {value:?} within 60 s"));
        // A topic just created can be unknown to the consumer for a moment: it says so and
        // goes on.
        if let Ok(message) = received {
            if message.payload() == Some(value.as_bytes()) {
                return;
            }
        }
    }
}

async fn wait_seen(observer: &GroupObserver, group: &str, client_id: &str, wanted: Seen) {
    wait_until(
        &format!("the broker to see {client_id} as {wanted:?}"),
        Duration::from_secs(30),
        || {
            let seen = observer.seen(group, client_id);
            async move { (seen == wanted).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_lists_a_member_until_it_leaves_and_a_replaced_consumer_reads_on() {
    let topic = topic().await;
    let mut config = ProcessorConfig::from_env("membership");
    config.group_id = unique("membership-group");
    config.instance = unique("membership-instance");
    let observer = GroupObserver::new(&stack().kafka_bootstrap).unwrap();
    let membership =
        Membership::subscribe(&config, "membership", std::slice::from_ref(&topic)).unwrap();

    produce(&topic, "first").await;
    receive(&membership, "first").await;
    assert_eq!(membership.seen(), Seen::Member);
    assert_eq!(
        observer.seen(&config.group_id, "someone-else"),
        Seen::Absent,
        "only this instance's client id counts"
    );

    // What the watchdog does once the broker has not listed the instance for its grace.
    membership.rejoin().unwrap();
    produce(&topic, "second").await;
    receive(&membership, "second").await;
    wait_seen(&observer, &config.group_id, &config.instance, Seen::Member).await;

    membership.leave().await;
    wait_seen(&observer, &config.group_id, &config.instance, Seen::Absent).await;
    assert_eq!(
        GroupObserver::new("127.0.0.1:1")
            .unwrap()
            .seen(&config.group_id, &config.instance),
        Seen::Unknown,
        "an unreachable broker judges nothing"
    );
    assert_eq!(
        observer.seen(&unique("no-such-group"), &config.instance),
        Seen::Unknown,
        "a group the broker does not describe judges nothing"
    );
}
