-- Virtual machines (issue 18): uploaded disk images, VMs defined from a template, and
-- the host ports forwarded to their guests. Those come from the same range of each host
-- as containers' ports: a VM takes none that `port_leases` holds, and the engine takes
-- none that a VM's QEMU has bound.

CREATE TABLE vm_images (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    virtual_size BIGINT NOT NULL,
    size BIGINT NOT NULL,
    host TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);

CREATE TABLE vms (
    owner TEXT NOT NULL,
    short_name TEXT NOT NULL,
    template TEXT NOT NULL,
    image_owner TEXT NOT NULL,
    image TEXT NOT NULL,
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    disk_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, short_name)
);
CREATE INDEX vms_image ON vms (image_owner, image);

CREATE TABLE vm_port_leases (
    host TEXT NOT NULL,
    host_port BIGINT NOT NULL,
    owner TEXT NOT NULL,
    short_name TEXT NOT NULL,
    guest_port BIGINT NOT NULL,
    PRIMARY KEY (host, host_port),
    FOREIGN KEY (owner, short_name) REFERENCES vms (owner, short_name)
);
CREATE INDEX vm_port_leases_vm ON vm_port_leases (owner, short_name);
