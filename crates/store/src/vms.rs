//! Virtual machines: uploaded disk images, VMs, and the host ports their guests are
//! forwarded from (`vm_port_leases`; the VM host lends them from the pool of its
//! containers' ports, and a primary key per host and port keeps each recorded once).

use super::{conflict, parse_user_name, PortLease, Result, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use wm_domain::{ContainerKey, ShortName, UserName};

/// An uploaded disk image.
#[derive(Debug, Clone)]
pub struct VmImageRecord {
    pub owner: UserName,
    pub name: ShortName,
    /// `qcow2` or `raw`.
    pub format: String,
    pub virtual_size: i64,
    pub size: i64,
    /// The VM host that keeps it.
    pub host: String,
    pub created_at: i64,
}

/// A VM defined from a template.
#[derive(Debug, Clone)]
pub struct VmRecord {
    pub owner: UserName,
    pub short_name: ShortName,
    pub template: String,
    pub image_owner: UserName,
    pub image: ShortName,
    pub host: String,
    /// `shutoff`, `running`, ... as libvirt last said (`wm_backend::vm::VmState`).
    pub status: String,
    pub vcpus: i64,
    pub memory_bytes: i64,
    /// The largest its disk may grow to.
    pub disk_bytes: i64,
    pub created_at: i64,
    pub ports: Vec<PortLease>,
}

impl VmRecord {
    pub fn key(&self) -> ContainerKey {
        ContainerKey {
            owner: self.owner.clone(),
            short: self.short_name.clone(),
        }
    }
}

fn short(s: String, what: &str) -> Result<ShortName> {
    ShortName::parse(&s).map_err(|e| StoreError::Corrupt(format!("{what} {s:?}: {e}")))
}

fn image_from_row(r: &AnyRow) -> Result<VmImageRecord> {
    Ok(VmImageRecord {
        owner: parse_user_name(r.try_get("owner")?)?,
        name: short(r.try_get("name")?, "VM image name")?,
        format: r.try_get("format")?,
        virtual_size: r.try_get("virtual_size")?,
        size: r.try_get("size")?,
        host: r.try_get("host")?,
        created_at: r.try_get("created_at")?,
    })
}

fn vm_from_row(r: &AnyRow) -> Result<VmRecord> {
    Ok(VmRecord {
        owner: parse_user_name(r.try_get("owner")?)?,
        short_name: short(r.try_get("short_name")?, "VM name")?,
        template: r.try_get("template")?,
        image_owner: parse_user_name(r.try_get("image_owner")?)?,
        image: short(r.try_get("image")?, "VM image name")?,
        host: r.try_get("host")?,
        status: r.try_get("status")?,
        vcpus: r.try_get("vcpus")?,
        memory_bytes: r.try_get("memory_bytes")?,
        disk_bytes: r.try_get("disk_bytes")?,
        created_at: r.try_get("created_at")?,
        ports: Vec::new(),
    })
}

impl Store {
    /// Records an uploaded image. [`StoreError::Conflict`] when its owner has one of that
    /// name.
    pub async fn insert_vm_image(&self, i: &VmImageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO vm_images (owner, name, format, virtual_size, size, host, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(i.owner.as_str())
        .bind(i.name.as_str())
        .bind(&i.format)
        .bind(i.virtual_size)
        .bind(i.size)
        .bind(&i.host)
        .bind(i.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("VM image {}", i.name)))?;
        Ok(())
    }

    pub async fn vm_image(
        &self,
        owner: &UserName,
        name: &ShortName,
    ) -> Result<Option<VmImageRecord>> {
        sqlx::query("SELECT * FROM vm_images WHERE owner = $1 AND name = $2")
            .bind(owner.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(image_from_row)
            .transpose()
    }

    /// One owner's images, or everyone's, by owner and name.
    pub async fn vm_images(&self, owner: Option<&UserName>) -> Result<Vec<VmImageRecord>> {
        let rows = match owner {
            Some(o) => {
                sqlx::query("SELECT * FROM vm_images WHERE owner = $1 ORDER BY owner, name")
                    .bind(o.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM vm_images ORDER BY owner, name")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(image_from_row).collect()
    }

    /// Deletes an image's record unless a VM uses it: `Ok(false)` then, and nothing
    /// changes. One statement, so a VM defined meanwhile is seen.
    pub async fn delete_vm_image_unused(&self, owner: &UserName, name: &ShortName) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM vm_images WHERE owner = $1 AND name = $2 AND NOT EXISTS \
             (SELECT 1 FROM vms WHERE image_owner = $1 AND image = $2)",
        )
        .bind(owner.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records a VM and leases its host ports, in one transaction.
    /// [`StoreError::Conflict`] when its owner has a VM of that name or a port is taken;
    /// nothing is kept then.
    pub async fn insert_vm(&self, v: &VmRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO vms (owner, short_name, template, image_owner, image, host, status, \
             vcpus, memory_bytes, disk_bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(v.owner.as_str())
        .bind(v.short_name.as_str())
        .bind(&v.template)
        .bind(v.image_owner.as_str())
        .bind(v.image.as_str())
        .bind(&v.host)
        .bind(&v.status)
        .bind(v.vcpus)
        .bind(v.memory_bytes)
        .bind(v.disk_bytes)
        .bind(v.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("VM {}", v.short_name)))?;
        lease(&mut tx, &v.key(), &v.host, &v.ports).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the host ports the VM host lent to a recorded VM.
    /// [`StoreError::Conflict`] when one is recorded already; nothing is kept then.
    pub async fn lease_vm_ports(
        &self,
        key: &ContainerKey,
        host: &str,
        ports: &[PortLease],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        lease(&mut tx, key, host, ports).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn vm_ports(&self, key: &ContainerKey) -> Result<Vec<PortLease>> {
        self.leases_in("vm_port_leases", key).await
    }

    pub async fn vm(&self, key: &ContainerKey) -> Result<Option<VmRecord>> {
        let row = sqlx::query("SELECT * FROM vms WHERE owner = $1 AND short_name = $2")
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut v = vm_from_row(&row)?;
        v.ports = self.vm_ports(key).await?;
        Ok(Some(v))
    }

    /// One owner's VMs, or everyone's, by owner and name, with their ports.
    pub async fn vms(&self, owner: Option<&UserName>) -> Result<Vec<VmRecord>> {
        let rows = match owner {
            Some(o) => {
                sqlx::query("SELECT * FROM vms WHERE owner = $1 ORDER BY owner, short_name")
                    .bind(o.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM vms ORDER BY owner, short_name")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut v = vm_from_row(r)?;
            v.ports = self.vm_ports(&v.key()).await?;
            out.push(v);
        }
        Ok(out)
    }

    pub async fn set_vm_status(&self, key: &ContainerKey, status: &str) -> Result<()> {
        sqlx::query("UPDATE vms SET status = $3 WHERE owner = $1 AND short_name = $2")
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a VM's record and its port leases, in one transaction.
    pub async fn delete_vm(&self, key: &ContainerKey) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM vm_port_leases WHERE owner = $1 AND short_name = $2",
            "DELETE FROM vms WHERE owner = $1 AND short_name = $2",
        ] {
            sqlx::query(sql)
                .bind(key.owner.as_str())
                .bind(key.short.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn lease(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &ContainerKey,
    host: &str,
    ports: &[PortLease],
) -> Result<()> {
    for p in ports {
        sqlx::query(
            "INSERT INTO vm_port_leases (host, host_port, owner, short_name, guest_port) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(host)
        .bind(i64::from(p.host_port))
        .bind(key.owner.as_str())
        .bind(key.short.as_str())
        .bind(i64::from(p.guest.get()))
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict(e, format!("host port {}", p.host_port)))?;
    }
    Ok(())
}
