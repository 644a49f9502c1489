// SPDX-License-Identifier: MIT OR Apache-2.0
//! The library's one piece of state: the connection, the handles given out (each names a
//! registration on one connection, so a handle of a lost connection can never act on a
//! registration of the next), the open enumerations, and the settings of MgmInitialize.

use std::{
    collections::HashMap,
    ffi::c_void,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

use mgm_client::proto::{
    self,
    types::{EnumHandle, Handle},
};

use crate::{
    DWORD, ERROR_ACCESS_DENIED, ERROR_CAN_NOT_COMPLETE, ERROR_CONNECTION_INVALID,
    ERROR_CONNECTION_REFUSED, ERROR_INVALID_PARAMETER, HANDLE, ROUTING_PROTOCOL_CONFIG,
    conn::{Conn, Wake},
    dispatch::{self, MGM_DISPATCH_CALLER, MGM_DISPATCH_THREAD, PMGM_CONNECTION_LOST_CALLBACK},
    v6::MGM_IPV6_CALLBACKS,
};

/// A registered protocol: its registration on one connection, and its callbacks.
pub struct Proto {
    pub conn: Arc<Conn>,
    pub server: Handle,
    pub config: ROUTING_PROTOCOL_CONFIG,
    pub config6: Option<MGM_IPV6_CALLBACKS>,
}

/// An open group enumeration: the protocol's handle and mgmd's cursor.
#[derive(Clone, Copy)]
pub struct Enumeration {
    pub proto: usize,
    pub server: EnumHandle,
}

struct Inner {
    socket: Option<String>,
    dispatch: DWORD,
    on_lost: PMGM_CONNECTION_LOST_CALLBACK,
    conn: Option<Arc<Conn>>,
    /// A lost connection the dispatcher has not reported yet.
    loss_unreported: bool,
    protos: HashMap<usize, Arc<Proto>>,
    enums: HashMap<usize, Enumeration>,
    /// The last handle given (handles are never given twice).
    last: usize,
    dispatch_thread: bool,
}

pub struct Registry {
    inner: Mutex<Inner>,
    wake: OnceLock<Option<Arc<Wake>>>,
}

pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        inner: Mutex::new(Inner {
            socket: None,
            dispatch: MGM_DISPATCH_CALLER,
            on_lost: None,
            conn: None,
            loss_unreported: false,
            protos: HashMap::new(),
            enums: HashMap::new(),
            last: 0,
            dispatch_thread: false,
        }),
        wake: OnceLock::new(),
    })
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) -> Option<Arc<Wake>> {
        self.wake.get_or_init(|| Wake::new().ok().map(Arc::new)).clone()
    }

    pub fn configure(
        &self,
        socket: Option<String>,
        dispatch: DWORD,
        on_lost: PMGM_CONNECTION_LOST_CALLBACK,
    ) -> Result<(), DWORD> {
        let mut inner = self.lock();
        if inner.conn.is_some() {
            return Err(ERROR_CAN_NOT_COMPLETE);
        }
        inner.socket = socket;
        inner.dispatch = dispatch;
        inner.on_lost = on_lost;
        Ok(())
    }

    pub fn event_fd(&self) -> i32 {
        self.wake().map_or(-1, |w| w.fd())
    }

    pub fn drain_wake(&self) {
        if let Some(w) = self.wake() {
            w.drain();
        }
    }

    /// The connection, made now if there is none or the last one was lost.
    pub fn connection(&self) -> Result<Arc<Conn>, DWORD> {
        let wake = self.wake().ok_or(ERROR_CAN_NOT_COMPLETE)?;
        let mut inner = self.lock();
        if let Some(c) = &inner.conn {
            if !c.lost() {
                return Ok(c.clone());
            }
            inner.loss_unreported = true;
        }
        let path = inner
            .socket
            .clone()
            .or_else(|| std::env::var("MGM_SOCKET").ok())
            .unwrap_or_else(|| proto::DEFAULT_SOCKET.to_owned());
        let c = Arc::new(Conn::connect(&path, wake).map_err(|e| match e {
            mgm_client::ClientError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ERROR_ACCESS_DENIED
            }
            _ => ERROR_CONNECTION_REFUSED,
        })?);
        inner.conn = Some(c.clone());
        if inner.dispatch == MGM_DISPATCH_THREAD && !inner.dispatch_thread {
            inner.dispatch_thread = dispatch::spawn_thread();
        }
        Ok(c)
    }

    /// The current connection, if any (never connects).
    pub fn current(&self) -> Option<Arc<Conn>> {
        self.lock().conn.clone()
    }

    fn next_handle(inner: &mut Inner) -> usize {
        inner.last += 1;
        inner.last
    }

    pub fn add_proto(
        &self,
        conn: &Arc<Conn>,
        server: Handle,
        config: ROUTING_PROTOCOL_CONFIG,
    ) -> HANDLE {
        let mut inner = self.lock();
        let h = Self::next_handle(&mut inner);
        // SAFETY: the daemon's table, or NULL; copied now (mgm.h says so).
        let config6 = unsafe { config.pIpv6Callbacks.as_ref() }.copied();
        let p = Proto { conn: conn.clone(), server, config, config6 };
        inner.protos.insert(h, Arc::new(p));
        h as *mut c_void
    }

    /// The protocol a handle names: ERROR_INVALID_PARAMETER for one never given (or
    /// deregistered), ERROR_CONNECTION_INVALID for one whose connection is gone.
    pub fn proto(&self, h: HANDLE) -> Result<Arc<Proto>, DWORD> {
        let p = self.lock().protos.get(&(h as usize)).cloned().ok_or(ERROR_INVALID_PARAMETER)?;
        if p.conn.lost() {
            return Err(ERROR_CONNECTION_INVALID);
        }
        Ok(p)
    }

    pub fn remove_proto(&self, h: HANDLE) {
        let mut inner = self.lock();
        inner.protos.remove(&(h as usize));
        inner.enums.retain(|_, e| e.proto != h as usize);
    }

    /// The protocol of this connection that mgmd calls `server`.
    pub fn proto_on(&self, conn: &Arc<Conn>, server: Handle) -> Option<(HANDLE, Arc<Proto>)> {
        let inner = self.lock();
        inner
            .protos
            .iter()
            .find(|(_, p)| p.server == server && Arc::ptr_eq(&p.conn, conn))
            .map(|(h, p)| (*h as *mut c_void, p.clone()))
    }

    pub fn add_enum(&self, proto: HANDLE, server: EnumHandle) -> HANDLE {
        let mut inner = self.lock();
        let h = Self::next_handle(&mut inner);
        inner.enums.insert(h, Enumeration { proto: proto as usize, server });
        h as *mut c_void
    }

    pub fn enumeration(&self, h: HANDLE) -> Result<Enumeration, DWORD> {
        self.lock().enums.get(&(h as usize)).copied().ok_or(ERROR_INVALID_PARAMETER)
    }

    pub fn remove_enum(&self, h: HANDLE) {
        self.lock().enums.remove(&(h as usize));
    }

    /// Whether a lost connection is still to be reported, and the callback to report it
    /// with; reported once.
    pub fn take_loss(&self) -> Option<PMGM_CONNECTION_LOST_CALLBACK> {
        let mut inner = self.lock();
        let lost_now = inner.conn.as_ref().is_some_and(|c| c.lost());
        if !(lost_now || inner.loss_unreported) {
            return None;
        }
        inner.loss_unreported = false;
        if lost_now {
            // Forget it: the next call that needs mgmd connects again, and this loss is
            // not reported twice.
            inner.conn = None;
        }
        Some(inner.on_lost)
    }
}
