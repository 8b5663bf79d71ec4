//! tcpdump task: capture a container group's packets, filtered in the
//! kernel by the `ops-tc` classifiers, into a pcap file.
