-- Virtual machines (issue 18): uploaded disk images, VMs defined from a template, and
-- their forwarded ports in the same table of host ports as containers'. A port lease says
-- whose kind of thing holds it; the primary key (host, host_port) still lends each host
-- port once, to a container or to a VM.

ALTER TABLE port_leases ADD COLUMN kind TEXT NOT NULL DEFAULT 'container';

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
