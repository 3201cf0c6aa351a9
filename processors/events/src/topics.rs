//! Topic names, as `topics.yaml` declares them (a unit test keeps the two in step).

pub const ORDER_COMMANDS: &str = "troupe.orders.commands";
pub const ORDER_EVENTS: &str = "troupe.orders.events";
pub const INVENTORY_EVENTS: &str = "troupe.inventory.events";
pub const INVENTORY_ADJUSTMENTS: &str = "troupe.inventory.adjustments";
pub const PAYMENT_EVENTS: &str = "troupe.payment.events";
pub const SHIPPING_EVENTS: &str = "troupe.shipping.events";
pub const NOTIFICATION_EVENTS: &str = "troupe.notification.events";
pub const DEADLETTER: &str = "troupe.deadletter";

#[cfg(test)]
mod tests {
    use crate::domain::EventType;
    use crate::topology::Topology;

    #[test]
    fn every_event_travels_on_the_topic_topics_yaml_gives_its_record() {
        let topology = Topology::parse(include_str!("../../../topics.yaml")).unwrap();
        for event_type in EventType::ALL {
            let record = event_type.record_name();
            let (topic, _) = topology
                .records()
                .find(|(_, v)| v.record == record)
                .unwrap_or_else(|| panic!("{record} is not in topics.yaml"));
            assert_eq!(topic.name, event_type.topic(), "{record}");
        }
        assert!(topology.topic(super::DEADLETTER).is_some());
    }

    #[test]
    fn event_type_indexes_follow_all() {
        for (i, event_type) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(event_type.index(), i, "{event_type:?}");
        }
    }
}
